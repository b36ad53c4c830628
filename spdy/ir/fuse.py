"""Fuse residual adds and activations into the spdy layer op that produces their input.

`relu(conv(x) + identity)` becomes one `spdy_conv2d(x, ..., residual=identity,
activation="relu")`: one kernel writes the final value instead of three passes over memory.
A node is fused only when the layer output has no other user, so nothing else observes
the intermediate value.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir import meta
from spdy.ir.ops import is_layer, layer_activation, layer_residual, replace_args

aten = torch.ops.aten
_ADD_FUNCS = {operator.add, torch.add, aten.add.Tensor, operator.iadd}
_ACT_FUNCS = {
    torch.relu: "relu", F.relu: "relu", aten.relu.default: "relu", aten.relu_.default: "relu",
    F.relu6: "relu6", F.gelu: "gelu", aten.gelu.default: "gelu",
    F.silu: "silu", aten.silu.default: "silu", aten.silu_.default: "silu",
    F.hardswish: "hardswish", aten.hardswish.default: "hardswish", aten.hardswish_.default: "hardswish",
    torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", aten.sigmoid.default: "sigmoid",
    F.hardsigmoid: "hardsigmoid", aten.hardsigmoid.default: "hardsigmoid",
}
_ACT_MODULES = {torch.nn.ReLU: "relu", torch.nn.ReLU6: "relu6", torch.nn.GELU: "gelu", torch.nn.SiLU: "silu",
                torch.nn.Hardswish: "hardswish", torch.nn.Sigmoid: "sigmoid", torch.nn.Hardsigmoid: "hardsigmoid"}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid"}


def _activation_of(gm, node) -> str | None:
    if node.op == "call_function" and node.target in _ACT_FUNCS:
        if node.target in (F.gelu, aten.gelu.default):
            approx = node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none")
            if approx != "none":
                return None
        return _ACT_FUNCS[node.target]
    if node.op == "call_function" and node.target in (aten.hardtanh.default, F.hardtanh):
        lo, hi = (list(node.args[1:3]) + [-1.0, 1.0])[:2] if len(node.args) > 1 else (-1.0, 1.0)
        return "relu6" if (lo, hi) == (0.0, 6.0) else None
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        act = _ACT_MODULES.get(type(mod))
        if act == "gelu" and getattr(mod, "approximate", "none") != "none":
            return None
        return act
    if node.op == "call_method" and node.target in _ACT_METHODS:
        return _ACT_METHODS[node.target]
    return None


def _residual_of(node, layer) -> torch.fx.Node | None:
    """The other operand when `node` is `layer + other` (or `other + layer`) of equal shape."""
    is_add = (node.op == "call_function" and node.target in _ADD_FUNCS) or \
        (node.op == "call_method" and node.target in ("add", "__add__"))
    if not is_add or len(node.args) != 2 or node.kwargs.get("alpha", 1) != 1:
        return None
    a, b = node.args
    other = b if a is layer else a if b is layer else None
    if not isinstance(other, torch.fx.Node) or other is layer:
        return None
    ls, os_ = layer.meta.get(meta.TENSOR), other.meta.get(meta.TENSOR)
    if ls is None or os_ is None or tuple(ls.shape) != tuple(os_.shape) or ls.dtype != os_.dtype:
        return None
    return other


def _rebuild(gm, layer, at, *, residual=None, activation=None):
    changes = {k: v for k, v in (("residual", residual), ("activation", activation)) if v is not None}
    with gm.graph.inserting_before(at):
        new = gm.graph.call_function(layer.target, replace_args(layer, **changes))
    new.meta[meta.TENSOR] = at.meta.get(meta.TENSOR)
    new.meta[meta.FUSED] = list(layer.meta.get(meta.FUSED, [layer.name])) + [at.name]
    at.replace_all_uses_with(new)
    gm.graph.erase_node(at)
    gm.graph.erase_node(layer)
    return new


def fuse_epilogues(gm: torch.fx.GraphModule) -> dict:
    """Fuse `+ residual` then an activation into each layer op where legal. Returns stats."""
    stats = {"residual": 0, "activation": 0}
    for layer in list(gm.graph.nodes):
        if not is_layer(layer):
            continue
        node = layer
        if len(node.users) == 1 and layer_residual(node) is None and layer_activation(node) == "none":
            user = next(iter(node.users))
            other = _residual_of(user, node)
            if other is not None and _defined_before(other, user):
                node = _rebuild(gm, node, user, residual=other)
                stats["residual"] += 1
        if len(node.users) == 1 and layer_activation(node) == "none":
            user = next(iter(node.users))
            act = _activation_of(gm, user)
            if act is not None:
                node = _rebuild(gm, node, user, activation=act)
                stats["activation"] += 1
    gm.graph.lint()
    gm.recompile()
    return stats


def _defined_before(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    for n in a.graph.nodes:
        if n is a:
            return True
        if n is b:
            return False
    return False
