"""Rewrite spdy's fused ops back into standard torch ops.

The pruned model is a GraphModule with spdy_conv2d / spdy_linear nodes; other runtimes
(ONNX exporters, TorchScript) do not know them. This expands each into F.pad/F.conv2d or
F.linear followed by the residual add and activation, computing the same values.
An int8 layer (its stub on, spdy/ir/quant.py) becomes the quantize-dequantize pairs ONNX
runtimes fuse into int8 kernels (QDQ): per-tensor fake-quant of the input (static), per-channel
fake-quant of the weight (exact: the weight already lies on its grid). A dynamic-per-row input
is written out as the plain ops of its fake-quant (ONNX has no per-row dynamic quantizer), so
the values match and that layer runs in float there.
"""
from __future__ import annotations

import copy
import operator

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir.ops import ACTIVATION_FNS, CONV2D, LINEAR, conv_args, layer_args, linear_args, replace_args
from spdy.ir.quant import LAYER_QUANT, act_quant_of, strip_quant
from spdy.ir.tensors import get_tensor, set_tensor
from spdy.passes.algo.quantize import fake_quant_act_dynamic
from spdy.qscheme import QMAX_A, QMIN_A


def _epilogue(graph, y, residual, act):
    if residual is not None:
        y = graph.call_function(operator.add, (y, residual))
    if act != "none":
        y = graph.call_function(ACTIVATION_FNS[act], (y,))
    return y


def _quantize_dequantize(gm, graph, stub, layer):
    """Replace an on stub by the input fake-quant and fake-quantize the layer's weight."""
    x, a, s, name = stub.args
    act = act_quant_of(get_tensor(gm, a.target))
    with graph.inserting_before(stub):
        if act.mode == "static":
            xq = graph.call_function(torch.fake_quantize_per_tensor_affine,
                                     (x, act.scale, act.zero_point, QMIN_A, QMAX_A))
        else:
            xq = graph.call_function(fake_quant_act_dynamic, (x,))
    stub.replace_all_uses_with(xq)
    graph.erase_node(stub)
    zp_path = s.target.rsplit(".", 1)[0] + ".spdy_w_zero_point"
    set_tensor(gm, zp_path, torch.zeros(get_tensor(gm, s.target).shape, dtype=torch.int32), parameter=False)
    w = layer_args(layer).weight
    with graph.inserting_before(layer):
        zp = graph.get_attr(zp_path)
        # ONNX accepts (-128, 127) for signed weights; ours lie in [-127, 127] already
        wq = graph.call_function(torch.fake_quantize_per_channel_affine, (w, s, zp, 0, -128, 127))
    layer.args = replace_args(layer, weight=wq)


def to_standard_ops(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of gm where every spdy op is expanded into standard torch ops (int8 layers as QDQ)."""
    gm = copy.deepcopy(gm)
    strip_quant(gm)
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (CONV2D, LINEAR):
            continue
        stub = layer_args(node).x
        if isinstance(stub, torch.fx.Node) and stub.target is LAYER_QUANT:
            _quantize_dequantize(gm, graph, stub, node)
        with graph.inserting_before(node):
            if node.target is LINEAR:
                x, w, b, res, act, _ = linear_args(node)
                y = graph.call_function(F.linear, (x, w, b))
            else:
                x, w, b, res, stride, pad, dil, groups, act, _ = conv_args(node)
                top, left, bottom, right = pad
                if (top, left) != (bottom, right):
                    x = graph.call_function(F.pad, (x, (left, right, top, bottom)))
                    sym = (0, 0)
                else:
                    sym = (top, left)
                y = graph.call_function(F.conv2d, (x, w, b, tuple(stride), sym, tuple(dil), groups))
            out = _epilogue(graph, y, res, act)
        node.replace_all_uses_with(out)
        graph.erase_node(node)
    graph.lint()
    gm.recompile()
    return gm
