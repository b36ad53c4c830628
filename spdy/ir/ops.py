"""spdy's own torch ops: conv2d and linear with a fused epilogue.

The IR rewrites every prunable layer (and the bias/batch-norm/residual-add/activation that
follows it) into one of these ops. They survive `torch.export` as single nodes, so the
lowering sees one op per kernel it emits: the epilogue fusion is decided once, on the fx
graph, where it is easy to test, and the kernel emitter receives the weights as constants
together with the layer's qualname (the key of the sparsity profile).

Semantics: y = act(op(x, weight) + bias + residual), act in ACTIVATIONS.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

ACTIVATIONS = ("none", "relu", "relu6", "gelu")


def _epilogue(y: torch.Tensor, residual: Optional[torch.Tensor], activation: str) -> torch.Tensor:
    if residual is not None:
        y = y + residual
    if activation == "none":
        return y
    if activation == "relu":
        return torch.relu(y)
    if activation == "relu6":
        return torch.clamp(y, 0.0, 6.0)
    if activation == "gelu":
        return F.gelu(y)
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
