"""spdy's own torch ops: conv2d and linear with a fused epilogue.

The IR rewrites every prunable layer (and the bias/batch-norm/residual-add/activation that
follows it) into one of these ops. They survive `torch.export` as single nodes, so the
lowering sees one op per kernel it emits: the epilogue fusion is decided once, on the fx
graph, where it is easy to test, and the kernel emitter receives the weights as constants
together with the layer's qualname (the key of the sparsity profile).

Semantics: y = act(op(x, weight) + bias + residual), act in ACTIVATIONS.

The ops' arguments are read and written only through the named accessors at the end of this
file (`conv_args`, `linear_args`, `layer_args`, `layer_activation`, ...): a pass never counts
argument positions, so adding an argument touches this file alone.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
import torch.nn.functional as F

from spdy.activations import ACTIVATIONS

# torch semantics of every activation but "none" (named functions: fx graphs call them too)
ACTIVATION_FNS = {"relu": torch.relu, "relu6": F.relu6, "gelu": F.gelu, "silu": F.silu, "hardswish": F.hardswish,
                  "sigmoid": torch.sigmoid, "hardsigmoid": F.hardsigmoid}


def _epilogue(y: torch.Tensor, residual: Optional[torch.Tensor], activation: str) -> torch.Tensor:
    if residual is not None:
        y = y + residual
    if activation == "none":
        return y
    if activation in ACTIVATION_FNS:
        return ACTIVATION_FNS[activation](y)
    raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def _conv2d_impl(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                residual: Optional[torch.Tensor], stride: list[int], padding: list[int],
                dilation: list[int], groups: int, activation: str, name: str) -> torch.Tensor:
    """padding is (top, left, bottom, right): asymmetric pads stay exact."""
    top, left, bottom, right = padding
    if top == bottom and left == right:
        y = F.conv2d(x, weight, bias, stride, (top, left), dilation, groups)
    else:
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, bias, stride, 0, dilation, groups)
    return _epilogue(y, residual, activation)


spdy_conv2d = torch.library.custom_op("spdy::spdy_conv2d", mutates_args=())(_conv2d_impl)


def conv_out_size(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int) -> int:
    return (size + pad_lo + pad_hi - dilation * (k - 1) - 1) // stride + 1


@spdy_conv2d.register_fake
def _conv_fake(x, weight, bias, residual, stride, padding, dilation, groups, activation, name):
    n, _, h, w = x.shape
    o, _, kh, kw = weight.shape
    oh = conv_out_size(h, kh, stride[0], padding[0], padding[2], dilation[0])
    ow = conv_out_size(w, kw, stride[1], padding[1], padding[3], dilation[1])
    return x.new_empty((n, o, oh, ow))


def _linear_impl(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 residual: Optional[torch.Tensor], activation: str, name: str) -> torch.Tensor:
    return _epilogue(F.linear(x, weight, bias), residual, activation)


spdy_linear = torch.library.custom_op("spdy::spdy_linear", mutates_args=())(_linear_impl)


@spdy_linear.register_fake
def _linear_fake(x, weight, bias, residual, activation, name):
    return x.new_empty(tuple(x.shape[:-1]) + (weight.shape[0],))


def _autograd_by_recompute(op, impl) -> None:
    """Gradients for x, weight, bias and residual (the first four arguments of both ops).

    Backward re-runs the plain torch implementation under autograd: these ops are only
    differentiated by calibration-time fine-tuning (global AdaPrune), where simplicity beats
    the saved recomputation."""
    def setup_context(ctx, inputs, output):
        ctx.inputs = inputs

    def backward(ctx, grad):
        args = list(ctx.inputs)
        idx = [i for i in range(4) if isinstance(args[i], torch.Tensor)]
        with torch.enable_grad():
            for i in idx:
                args[i] = args[i].detach().requires_grad_(True)
            out = impl(*args)
            grads = torch.autograd.grad(out, [args[i] for i in idx], grad, allow_unused=True)
        result = [None] * len(args)
        for i, g in zip(idx, grads):
            result[i] = g
        return tuple(result)

    op.register_autograd(backward, setup_context=setup_context)


_autograd_by_recompute(spdy_conv2d, _conv2d_impl)
_autograd_by_recompute(spdy_linear, _linear_impl)

CONV2D = torch.ops.spdy.spdy_conv2d.default
LINEAR = torch.ops.spdy.spdy_linear.default
SPDY_OPS = (CONV2D, LINEAR)


class ConvArgs(NamedTuple):
    """The arguments of a spdy_conv2d node, in the op's order."""
    x: Any
    weight: Any
    bias: Any
    residual: Any
    stride: Any
    padding: Any            # (top, left, bottom, right)
    dilation: Any
    groups: Any
    activation: str
    name: str               # the layer's qualname: the key of profiles and databases


class LinearArgs(NamedTuple):
    """The arguments of a spdy_linear node, in the op's order."""
    x: Any
    weight: Any
    bias: Any
    residual: Any
    activation: str
    name: str


_ARGS = {CONV2D: ConvArgs, LINEAR: LinearArgs}


def call_arg(node, i: int, name: str, default=None):
    """Argument `i` of an fx call, given positionally or by keyword `name`."""
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def is_layer(node) -> bool:
    """A call of one of spdy's layer ops (an fx node, also of an exported program)."""
    return getattr(node, "op", None) == "call_function" and node.target in _ARGS


def layer_args(node) -> ConvArgs | LinearArgs:
    """The named arguments of a spdy_conv2d or spdy_linear node."""
    if not is_layer(node):
        raise TypeError(f"{getattr(node, 'name', node)!r} is not a spdy layer op (spdy_conv2d / spdy_linear)")
    return _ARGS[node.target](*node.args)


def conv_args(node) -> ConvArgs:
    if getattr(node, "target", None) is not CONV2D:
        raise TypeError(f"{getattr(node, 'name', node)!r} is not a spdy_conv2d node")
    return ConvArgs(*node.args)


def linear_args(node) -> LinearArgs:
    if getattr(node, "target", None) is not LINEAR:
        raise TypeError(f"{getattr(node, 'name', node)!r} is not a spdy_linear node")
    return LinearArgs(*node.args)


def layer_activation(node) -> str:
    return layer_args(node).activation


def layer_residual(node):
    """The residual operand fused into the layer (an fx node), or None."""
    return layer_args(node).residual


def layer_name(node) -> str:
    return layer_args(node).name


def replace_args(node, **changes) -> tuple:
    """The node's argument tuple with the named arguments replaced (for ``node.args = ...`` or
    a new call of the same op), e.g. ``replace_args(conv, residual=other, activation="relu")``."""
    return tuple(layer_args(node)._replace(**changes))

