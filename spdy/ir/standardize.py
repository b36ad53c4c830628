"""Rewrite spdy's fused ops back into standard torch ops.

The pruned model is a GraphModule with spdy_conv2d / spdy_linear nodes; other runtimes
(ONNX exporters, TorchScript) do not know them. This expands each into F.pad/F.conv2d or
F.linear followed by the residual add and activation, computing the same values.
"""
from __future__ import annotations

import copy
import operator

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir.ops import CONV2D, LINEAR, conv_args, linear_args

_ACT = {"relu": torch.relu, "gelu": F.gelu}


def _epilogue(graph, y, residual, act):
    if residual is not None:
        y = graph.call_function(operator.add, (y, residual))
    if act == "relu6":
        return graph.call_function(torch.clamp, (y, 0.0, 6.0))
    if act != "none":
        y = graph.call_function(_ACT[act], (y,))
    return y


def to_standard_ops(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of gm where every spdy op is expanded into standard torch ops."""
    gm = copy.deepcopy(gm)
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in (CONV2D, LINEAR):
            continue
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
