"""Per-layer int8 stubs on a canonical graph: the layer's input fake-quant and its weight scales.

Like a mask (spdy/ir/masks.py), a stub is inserted early and set later: one node between a
layer's input and the layer op, `spdy::layer_quant(x, act, w_scale, name)`, reading two
buffers next to the weight: `<module>.spdy_act_q` = [mode, scale, zero_point] (mode 0 off,
1 static, 2 dynamic; spdy/qscheme.py) and `<module>.spdy_w_scale` = the per-output-channel
weight scales. Off, the stub returns its input unchanged (bit-exact with the dense graph), so
the search can switch a layer to int8 by writing two buffers, with no re-tracing.
Why the weight scales ride on the stub: the int8 weights are stored on their grid as floats
(q * scale), which is what the torch model computes with; the lowering and the ONNX export
need the scales to recover q exactly, and a graph that carries them explains itself
(`pruned_model` alone is enough to build the artifact or a QDQ model).
`strip_quant(gm)` drops the stubs that are off, before lowering and export.
"""
from __future__ import annotations

import torch
import torch.fx

from spdy.ir import meta
from spdy.ir.layers import LayerInfo, beside_weight
from spdy.ir.ops import layer_args, replace_args
from spdy.ir.tensors import get_tensor, set_tensor
from spdy.passes.algo.quantize import fake_quant_act_dynamic, fake_quant_act_static
from spdy.qscheme import ActQuant

ACT_BUFFER, SCALE_BUFFER = "spdy_act_q", "spdy_w_scale"   # next to the weight (layers.beside_weight)
OFF, STATIC, DYNAMIC = 0, 1, 2
_MODES = {"static": STATIC, "dynamic": DYNAMIC}


def _layer_quant_impl(x: torch.Tensor, act: torch.Tensor, w_scale: torch.Tensor, name: str) -> torch.Tensor:
    mode = int(act[0])
    if mode == OFF:
        return x.clone()
    if mode == STATIC:
        return fake_quant_act_static(x, float(act[1]), int(act[2])).to(x.dtype)
    return fake_quant_act_dynamic(x).to(x.dtype)


layer_quant = torch.library.custom_op("spdy::layer_quant", mutates_args=())(_layer_quant_impl)


@layer_quant.register_fake
def _layer_quant_fake(x, act, w_scale, name):
    return torch.empty_like(x)


def _straight_through(ctx, grad):
    """Gradients pass the fake-quant unchanged (straight-through), as in quantization-aware
    fine-tuning; only global AdaPrune differentiates through stubs."""
    return grad, None, None, None


layer_quant.register_autograd(_straight_through)
LAYER_QUANT = torch.ops.spdy.layer_quant.default


def act_path(layer: LayerInfo) -> str:
    return beside_weight(layer.weight, ACT_BUFFER)


def scale_path(layer: LayerInfo) -> str:
    return beside_weight(layer.weight, SCALE_BUFFER)


def insert_quant_stubs(gm: torch.fx.GraphModule, layers: list[LayerInfo]) -> int:
    """An off stub before every layer that has none; returns how many were added."""
    nodes = {n.name: n for n in gm.graph.nodes}
    added = 0
    for layer in layers:
        node = nodes[layer.node]
        if meta.QUANT in node.meta:
            continue
        x = layer_args(node).x
        set_tensor(gm, act_path(layer), torch.zeros(3), parameter=False)
        set_tensor(gm, scale_path(layer), torch.ones(layer.weight_shape[0]), parameter=False)
        with gm.graph.inserting_before(node):
            a = gm.graph.get_attr(act_path(layer))
            s = gm.graph.get_attr(scale_path(layer))
            stub = gm.graph.call_function(LAYER_QUANT, (x, a, s, layer.qualname))
        stub.meta[meta.TENSOR] = x.meta.get(meta.TENSOR) if isinstance(x, torch.fx.Node) else None
        node.args = replace_args(node, x=stub)
        node.meta[meta.QUANT] = layer.qualname
        added += 1
    gm.graph.lint()
    gm.recompile()
    return added


def set_quant(gm: torch.nn.Module, layer: LayerInfo, act: ActQuant | None, w_scale=None) -> None:
    """Switch a layer's stub to int8 with these parameters, or off (act None)."""
    a = get_tensor(gm, act_path(layer))
    if act is None:
        a.zero_()
        return
    a.copy_(torch.tensor([_MODES[act.mode], act.scale, act.zero_point], dtype=a.dtype))
    s = get_tensor(gm, scale_path(layer))
    ws = torch.as_tensor(w_scale, dtype=s.dtype).reshape(-1)
    if ws.shape != s.shape:
        raise ValueError(f"{layer.qualname}: {ws.numel()} weight scales for {s.numel()} output channels")
    s.copy_(ws)


def stub_of(layer_node: torch.fx.Node) -> torch.fx.Node | None:
    """The stub feeding a layer op, if any."""
    x = layer_args(layer_node).x
    return x if isinstance(x, torch.fx.Node) and x.target is LAYER_QUANT else None


def act_quant_of(act: torch.Tensor) -> ActQuant | None:
    """The ActQuant a stub's act buffer describes (None: off)."""
    mode = int(act[0])
    if mode == OFF:
        return None
    return ActQuant("static" if mode == STATIC else "dynamic", float(act[1]) if mode == STATIC else 1.0,
                    int(act[2]) if mode == STATIC else 0)


def strip_quant(gm: torch.fx.GraphModule) -> int:
    """Drop the stubs that are off (their layers run fp32); returns how many int8 stubs stay."""
    kept = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not LAYER_QUANT:
            continue
        _, a, s, _ = node.args
        if act_quant_of(get_tensor(gm, a.target)) is not None:
            kept += 1
            continue
        node.replace_all_uses_with(node.args[0])
        gm.graph.erase_node(node)
        for buf in (a, s):
            if not buf.users:
                gm.graph.erase_node(buf)
    for user in gm.graph.nodes:
        if user.op == "call_function" and meta.QUANT in user.meta and stub_of(user) is None:
            user.meta.pop(meta.QUANT)
    gm.graph.lint()
    gm.recompile()
    return kept
