"""Invariants of spdy's canonical graph, checked after every pass in debug mode and in tests.

The passes rely on them without re-checking, so a pass that breaks one is named right where
it happened (spdy.passes.instruments.VerifyGraph) instead of surfacing as a wrong kernel
three passes later:

1. the fx graph lints (topological order, every use defined, targets resolve);
2. every layer op (spdy_conv2d / spdy_linear) reads its weight and bias as constants:
   get_attr nodes of tensors, the weight [O, K] or [O, C/g, KH, KW], the bias [O];
3. a masked layer (meta MASK) reads `weight * mask` with both operands constants, the mask
   named after the layer, of the weight's shape, holding only 0 and 1;
4. an int8 stub (spdy::layer_quant) feeds exactly the layer named in it, which says so
   (meta QUANT); its act buffer is [mode, scale, zero point] with a known mode, a positive
   scale and a u8 zero point; its weight scales are positive, one per output channel; when
   on, the layer's weight lies on its int8 grid (weight / scale whole, |q| <= 127);
5. the layer records (ctx.artifacts["layers"]) are the graph's layers, in graph order.
"""
from __future__ import annotations

import math
import operator

import torch
import torch.fx

from spdy.errors import PipelineError
from spdy.ir import meta
from spdy.ir.layers import beside_weight, layer_from_node
from spdy.ir.ops import LINEAR, is_layer, layer_args
from spdy.ir.quant import ACT_BUFFER, DYNAMIC, LAYER_QUANT, OFF, SCALE_BUFFER, STATIC, act_quant_of
from spdy.ir.tensors import get_tensor
from spdy.qscheme import QMAX_W

GRID_TOL = 1e-3   # |weight / scale - round(...)| allowed on an int8 layer (float32 storage of q * scale)


class GraphInvariantError(PipelineError):
    """A pass left the graph in a state the other passes do not expect."""


def check_graph(gm: torch.fx.GraphModule, layers=None) -> None:
    """Raise GraphInvariantError listing every broken invariant (the module doc's list)."""
    problems = graph_problems(gm, layers)
    if problems:
        more = f" (and {len(problems) - 8} more)" if len(problems) > 8 else ""
        raise GraphInvariantError("graph invariants broken: " + "; ".join(problems[:8]) + more)


def graph_problems(gm: torch.fx.GraphModule, layers=None) -> list[str]:
    """Every broken invariant, one line each ([] when the graph is sound)."""
    problems = []
    try:
        gm.graph.lint()
    except Exception as e:  # noqa: BLE001 - lint's own message is the problem
        problems.append(f"graph lint: {e}")
    has_layers = False
    for node in gm.graph.nodes:
        if is_layer(node):
            has_layers = True
            problems += _layer_problems(gm, node)
        elif node.op == "call_function" and node.target is LAYER_QUANT:
            problems += _stub_problems(gm, node)
    if layers is not None and has_layers:
        problems += _record_problems(gm, layers)
    return problems


def _tensor(gm, node) -> torch.Tensor | None:
    if not (isinstance(node, torch.fx.Node) and node.op == "get_attr"):
        return None
    try:
        t = get_tensor(gm, node.target)
    except AttributeError:
        return None
    return t.detach() if isinstance(t, torch.Tensor) else None


def _layer_problems(gm, node) -> list[str]:
    a = layer_args(node)
    where = f"layer {a.name} ({node.name})"
    out = []
    w_node = a.weight
    mask_path = node.meta.get(meta.MASK)
    if mask_path is not None:
        if not (isinstance(w_node, torch.fx.Node) and w_node.op == "call_function" and w_node.target is operator.mul
                and len(w_node.args) == 2):
            return [f"{where}: masked (meta {meta.MASK}) but its weight is not weight * mask"]
        w_node, m_node = w_node.args
        mask = _tensor(gm, m_node)
        if mask is None or m_node.target != mask_path:
            out.append(f"{where}: its mask is not the constant {mask_path!r}")
    weight = _tensor(gm, w_node)
    if weight is None:
        return out + [f"{where}: weight is not a constant tensor (get_attr)"]
    want_dims = 2 if node.target is LINEAR else 4
    if weight.dim() != want_dims:
        out.append(f"{where}: weight has {weight.dim()} dims, expected {want_dims}")
    if mask_path is not None and mask is not None:
        if tuple(mask.shape) != tuple(weight.shape):
            out.append(f"{where}: mask shape {tuple(mask.shape)} != weight shape {tuple(weight.shape)}")
        elif not bool(((mask == 0) | (mask == 1)).all()):
            out.append(f"{where}: mask holds values other than 0 and 1")
    if a.bias is not None:
        bias = _tensor(gm, a.bias)
        if bias is None:
            out.append(f"{where}: bias is not a constant tensor (get_attr)")
        elif tuple(bias.shape) != (weight.shape[0],):
            out.append(f"{where}: bias shape {tuple(bias.shape)} != ({weight.shape[0]},)")
    fed_by_stub = isinstance(a.x, torch.fx.Node) and a.x.target is LAYER_QUANT
    if fed_by_stub != (meta.QUANT in node.meta):
        out.append(f"{where}: meta {meta.QUANT} says {'a' if meta.QUANT in node.meta else 'no'} int8 stub, "
                   f"the input says {'a' if fed_by_stub else 'no'} stub")
    return out


def _stub_problems(gm, stub) -> list[str]:
    if len(stub.args) != 4 or not isinstance(stub.args[3], str):
        return [f"int8 stub {stub.name}: expected arguments (x, act, w_scale, layer name)"]
    _, a_node, s_node, name = stub.args
    where = f"int8 stub of {name} ({stub.name})"
    out = []
    act, scale = _tensor(gm, a_node), _tensor(gm, s_node)
    users = list(stub.users)
    if len(users) != 1 or not is_layer(users[0]) or layer_args(users[0]).name != name \
            or layer_args(users[0]).x is not stub:
        return [f"{where}: must feed exactly the input of layer {name}, feeds {[u.name for u in users]}"]
    info = layer_from_node(users[0])
    for node, value, buffer, what in ((a_node, act, ACT_BUFFER, "act"), (s_node, scale, SCALE_BUFFER, "weight scales")):
        expected = beside_weight(info.weight, buffer) if info is not None else buffer
        if value is None or node.target != expected:
            out.append(f"{where}: {what} is not the constant {expected!r}")
    if out:
        return out
    layer = users[0]
    if act.shape != (3,) or int(act[0]) not in (OFF, STATIC, DYNAMIC) or float(act[0]) != int(act[0]):
        return [f"{where}: act must be [mode 0/1/2, scale, zero point], got {act.tolist()}"]
    if int(act[0]) == STATIC and not (float(act[1]) > 0 and math.isfinite(float(act[1]))
                                      and float(act[2]) == int(act[2]) and 0 <= int(act[2]) <= 255):
        out.append(f"{where}: static scale must be > 0 and the zero point a whole number in [0, 255], "
                   f"got {act.tolist()[1:]}")
    weight = _layer_weight(gm, layer)
    if scale.dim() != 1 or (weight is not None and scale.shape[0] != weight.shape[0]):
        return out + [f"{where}: {tuple(scale.shape)} weight scales for "
                      f"{None if weight is None else weight.shape[0]} output channels"]
    if not bool(torch.isfinite(scale).all() & (scale > 0).all()):
        out.append(f"{where}: weight scales must be positive and finite")
    elif act_quant_of(act) is not None and weight is not None:
        q = weight.detach().double().reshape(weight.shape[0], -1) / scale.double().reshape(-1, 1)
        if float((q - q.round()).abs().max()) > GRID_TOL or float(q.abs().max()) > QMAX_W + GRID_TOL:
            out.append(f"{where}: the stub is on but the weight is not on its int8 grid (weight / scale)")
    return out


def _layer_weight(gm, layer) -> torch.Tensor | None:
    w = layer_args(layer).weight
    if isinstance(w, torch.fx.Node) and w.op == "call_function" and w.target is operator.mul:
        w = w.args[0]
    return _tensor(gm, w)


def _record_problems(gm, layers) -> list[str]:
    found = [info for info in (layer_from_node(n) for n in gm.graph.nodes) if info is not None]
    have = list(layers)
    if found == have:
        return []
    names_f, names_h = [l.qualname for l in found], [l.qualname for l in have]
    if names_f != names_h:
        return [f"layer records name {names_h}, the graph's layers are {names_f}: a pass that changes layer "
                "nodes must refresh ctx.artifacts['layers'] (spdy.ir.layers.find_layers)"]
    stale = next((f, h) for f, h in zip(found, have) if f != h)
    return [f"layer record of {stale[1].qualname} is stale ({_diff(stale[1], stale[0])}): a pass that changes "
            "layer nodes must refresh ctx.artifacts['layers'] (spdy.ir.layers.find_layers)"]


def _diff(record, graph) -> str:
    import dataclasses
    return ", ".join(f"{f.name}: record {getattr(record, f.name)!r}, graph {getattr(graph, f.name)!r}"
                     for f in dataclasses.fields(record) if getattr(record, f.name) != getattr(graph, f.name))
