"""Rewrite a traced graph into spdy's canonical form.

Both tracers' spellings of the same layer (an nn.Conv2d call_module, F.conv2d, aten.conv2d
in exported graphs; likewise for Linear) become one spdy op with its weight and bias as
get_attr constants. Eval-mode batch norm after a conv is folded into the conv's weights
(fewer kernels, and it sidesteps TVM's batch_norm importer); any other eval batch norm
becomes a per-channel affine. Later passes then deal with exactly two layer ops.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F

from spdy.errors import UnsupportedOpError
from spdy.ir import meta
from spdy.ir.attention_modules import expand_multihead_attention
from spdy.ir.identities import drop_eval_identities
from spdy.ir.ops import CONV2D, LINEAR, ConvArgs, LinearArgs, call_arg, conv_args, replace_args
from spdy.ir.tensors import get_tensor, set_tensor

aten = torch.ops.aten
_CONV_FUNCS = {F.conv2d, torch.conv2d, aten.conv2d.default}
_LINEAR_FUNCS = {F.linear, torch._C._nn.linear, aten.linear.default}
_BN_FUNCS = {F.batch_norm, torch.batch_norm, aten.batch_norm.default}


def _pair(v, n=2):
    if isinstance(v, int):
        return [v] * n
    return [int(x) for x in v]


def _conv_padding(padding, weight_shape, dilation, stride, where: str) -> list[int]:
    """(top, left, bottom, right) for int/tuple/'same'/'valid' padding."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0, 0, 0, 0]
        if padding == "same":
            if any(s != 1 for s in stride):
                raise UnsupportedOpError(f"{where}: padding='same' with stride != 1 is not supported")
            pads = []
            for k, d in zip(weight_shape[2:], dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]
        raise UnsupportedOpError(f"{where}: unknown padding {padding!r}")
    ph, pw = _pair(padding)
    return [ph, pw, ph, pw]


class _Builder:
    def __init__(self, gm: torch.fx.GraphModule):
        self.gm, self.graph = gm, gm.graph

    def attr(self, path: str | None):
        return None if path is None else self.graph.get_attr(path)

    def weight_path(self, node_arg) -> str | None:
        if isinstance(node_arg, torch.fx.Node) and node_arg.op == "get_attr":
            return node_arg.target
        return None


def _qualname(weight_path: str) -> str:
    return weight_path[:-len(".weight")] if weight_path.endswith(".weight") else weight_path


def canonicalize(gm: torch.fx.GraphModule) -> dict:
    """Rewrite layers into spdy ops and fold/replace batch norms. Returns stats."""
    b = _Builder(gm)
    stats = {"conv2d": 0, "linear": 0, "bn_folded": 0, "bn_affine": 0}
    identities = drop_eval_identities(gm)   # before fusion can see the residual adds behind them
    if identities:
        stats["identities_removed"] = identities
    attention = expand_multihead_attention(gm)   # its projections become spdy_linear layers
    stats["linear"] += 2 * attention
    if attention:
        stats["attention_opened"] = attention
    for node in list(gm.graph.nodes):
        if node.op == "call_module":
            mod = gm.get_submodule(node.target)
            if type(mod) is torch.nn.Conv2d:
                _module_conv(b, node, mod)
                stats["conv2d"] += 1
            elif type(mod) is torch.nn.Linear:
                _module_linear(b, node, mod)
                stats["linear"] += 1
            elif isinstance(mod, torch.nn.BatchNorm2d) and not mod.training:
                _batch_norm(b, node, f"{node.target}.weight", f"{node.target}.bias",
                            f"{node.target}.running_mean", f"{node.target}.running_var", mod.eps, stats)
        elif node.op == "call_function":
            if node.target in _CONV_FUNCS and b.weight_path(node.args[1]):
                _func_conv(b, node)
                stats["conv2d"] += 1
            elif node.target in _LINEAR_FUNCS and b.weight_path(node.args[1]):
                _func_linear(b, node)
                stats["linear"] += 1
            elif node.target in _BN_FUNCS:
                training = call_arg(node, 5, "training", False)
                paths = [b.weight_path(call_arg(node, i, n, None)) for i, n in
                         ((1, "weight"), (2, "bias"), (3, "running_mean"), (4, "running_var"))]
                if not training and paths[2] and paths[3]:
                    eps = call_arg(node, 7, "eps", 1e-5)
                    _batch_norm(b, node, *paths, eps, stats)
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return stats


def _replace(b: _Builder, node, target, args, name_hint: str):
    with b.graph.inserting_before(node):
        new = b.graph.create_node("call_function", target, tuple(args), name=name_hint.replace(".", "_"))
    new.meta.update({k: v for k, v in node.meta.items() if k in (meta.TENSOR, "val", "nn_module_stack")})
    node.replace_all_uses_with(new)
    b.graph.erase_node(node)
    return new


def _module_conv(b, node, mod: torch.nn.Conv2d):
    if mod.padding_mode != "zeros":
        raise UnsupportedOpError(f"{node.target}: Conv2d padding_mode={mod.padding_mode!r} is not supported")
    q = node.target
    with b.graph.inserting_before(node):
        w, bias = b.attr(f"{q}.weight"), b.attr(f"{q}.bias" if mod.bias is not None else None)
    pad = _conv_padding(mod.padding, mod.weight.shape, mod.dilation, mod.stride, q)
    _replace(b, node, CONV2D, ConvArgs(node.args[0], w, bias, None, list(mod.stride), pad,
                                       list(mod.dilation), mod.groups, "none", q), q)


def _module_linear(b, node, mod: torch.nn.Linear):
    q = node.target
    with b.graph.inserting_before(node):
        w, bias = b.attr(f"{q}.weight"), b.attr(f"{q}.bias" if mod.bias is not None else None)
    _replace(b, node, LINEAR, LinearArgs(node.args[0], w, bias, None, "none", q), q)


def _func_conv(b, node):
    w = node.args[1]
    bias = call_arg(node, 2, "bias", None)
    stride = _pair(call_arg(node, 3, "stride", 1))
    dilation = _pair(call_arg(node, 5, "dilation", 1))
    groups = int(call_arg(node, 6, "groups", 1))
    wshape = get_tensor(b.gm, w.target).shape
    q = _qualname(w.target)
    pad = _conv_padding(call_arg(node, 4, "padding", 0), wshape, dilation, stride, q)
    _replace(b, node, CONV2D, ConvArgs(node.args[0], w, bias, None, stride, pad, dilation, groups, "none", q), q)


def _func_linear(b, node):
    w = node.args[1]
    q = _qualname(w.target)
    _replace(b, node, LINEAR, LinearArgs(node.args[0], w, call_arg(node, 2, "bias", None), None, "none", q), q)


def _batch_norm(b, node, wpath, bpath, mpath, vpath, eps, stats):
    gm = b.gm
    mean, var = get_tensor(gm, mpath).float(), get_tensor(gm, vpath).float()
    gamma = get_tensor(gm, wpath).float() if wpath else torch.ones_like(mean)
    beta = get_tensor(gm, bpath).float() if bpath else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + eps)
    shift = beta - mean * scale
    src = node.args[0]
    if (isinstance(src, torch.fx.Node) and src.target is CONV2D and len(src.users) == 1
            and conv_args(src).residual is None and conv_args(src).activation == "none"):
        _fold_into_conv(b, src, scale, shift)
        node.replace_all_uses_with(src)
        b.graph.erase_node(node)
        stats["bn_folded"] += 1
        return
    base = node.name
    set_tensor(gm, f"spdy_bn_{base}_scale", scale.reshape(1, -1, 1, 1), parameter=False)
    set_tensor(gm, f"spdy_bn_{base}_shift", shift.reshape(1, -1, 1, 1), parameter=False)
    with b.graph.inserting_before(node):
        s = b.graph.get_attr(f"spdy_bn_{base}_scale")
        t = b.graph.get_attr(f"spdy_bn_{base}_shift")
        mul = b.graph.call_function(operator.mul, (src, s))
        add = b.graph.call_function(operator.add, (mul, t))
    add.meta.update({k: v for k, v in node.meta.items() if k == meta.TENSOR})
    node.replace_all_uses_with(add)
    b.graph.erase_node(node)
    stats["bn_affine"] += 1


def _fold_into_conv(b, conv, scale, shift):
    """W' = W * scale[o], b' = (b - mean) * scale + beta, stored back at the conv's paths."""
    gm = b.gm
    wnode, bnode = conv_args(conv).weight, conv_args(conv).bias
    w = get_tensor(gm, wnode.target)
    new_w = (w.float() * scale.reshape(-1, 1, 1, 1)).to(w.dtype)
    old_b = get_tensor(gm, bnode.target).float() if bnode is not None else torch.zeros_like(shift)
    new_b = (old_b * scale + shift).to(w.dtype)
    set_tensor(gm, wnode.target, new_w)
    bias_path = bnode.target if bnode is not None else f"{_qualname(wnode.target)}.bias"
    set_tensor(gm, bias_path, new_b)
    if bnode is None:
        with b.graph.inserting_before(conv):
            bnode = b.graph.get_attr(bias_path)
        conv.args = replace_args(conv, bias=bnode)
