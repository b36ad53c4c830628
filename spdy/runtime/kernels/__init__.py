"""Kernel emitters called by the lowering for each spdy conv/linear op, and our Relax pipeline.

emit_conv2d / emit_linear emit ``call_tir`` of register-tiled TIR kernels (see gemm.py) with
pre-packed constant weights and fused bias/residual/activation epilogues; layers listed in
``ctx.sparse`` go to ``spdy.runtime.sparse``; layers with ``quant`` (an int8 stub's ActQuant and
weight scales) go to the int8 kernels of ``spdy.runtime.int8`` in the profile's format. ``relax_pipeline`` schedules everything else and
refuses to build a module with an unscheduled op.
"""
from __future__ import annotations

import numpy as np

from spdy.activations import ACTIVATIONS

from .check import UnscheduledOpError, check_scheduled
from .pipeline import relax_pipeline


__all__ = ["emit_conv2d", "emit_linear", "relax_pipeline", "UnscheduledOpError", "check_scheduled"]


def _sparse(kind: str, name: str):
    try:
        from spdy.runtime import sparse
        return getattr(sparse, f"emit_sparse_{kind}")
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"layer {name!r} is marked sparse but spdy.runtime.sparse "
                                  f"has no emit_sparse_{kind}: {e}") from e


def _int8_format(name: str, ctx) -> str:
    """The int8 kernel format of a layer from its profile entry: "dense", "bsr16x4", ..."""
    from spdy import formats
    fmt = formats.get(ctx.sparse.get(name, {}).get("format", "dense-int8"))
    if not fmt.int8:
        raise ValueError(f"layer {name!r} has an int8 stub but profile format {fmt.name!r}")
    return "dense" if not fmt.sparse else fmt.name[: -len("-int8")]


def _quantized_weight(weight, w_scale):
    from spdy.qscheme import quantize_weight_np
    return quantize_weight_np(weight, w_scale), np.asarray(w_scale, np.float32).reshape(-1)


def emit_conv2d(bb, x, weight: np.ndarray, bias, residual, *, stride, padding, dilation,
                groups, activation, name, ctx, quant=None):
    """y = act(conv2d(x, weight) + bias[None,:,None,None] + residual), NCHW in and out.

    padding is (top, left, bottom, right). `quant`: (ActQuant, w_scale) for an int8 layer,
    whose weight then lies on its int8 grid (w = q * w_scale).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    kw = dict(stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
              groups=groups, activation=activation, name=name, ctx=ctx)
    if quant is not None:
        from spdy.runtime.int8.conv_emit import emit_int8_conv2d
        w_q, w_scale = _quantized_weight(weight, quant[1])
        return emit_int8_conv2d(bb, x, w_q, w_scale, bias, residual, act=quant[0],
                                fmt=_int8_format(name, ctx), **kw)
    if name in ctx.sparse:
        return _sparse("conv2d", name)(bb, x, weight, bias, residual, spec=ctx.sparse[name], **kw)
    from .conv import emit_dense_conv2d
    return emit_dense_conv2d(bb, x, weight, bias, residual, **kw)


def emit_linear(bb, x, weight: np.ndarray, bias, residual, *, activation, name, ctx, quant=None):
    """y = act(x @ weight.T + bias + residual) over the last axis of x (int8 with `quant`)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    if quant is not None:
        from spdy.runtime.int8 import emit_int8_linear
        w_q, w_scale = _quantized_weight(weight, quant[1])
        return emit_int8_linear(bb, x, w_q, w_scale, bias, residual, act=quant[0],
                                fmt=_int8_format(name, ctx), activation=activation, name=name, ctx=ctx)
    if name in ctx.sparse:
        return _sparse("linear", name)(bb, x, weight, bias, residual, activation=activation,
                                       name=name, ctx=ctx, spec=ctx.sparse[name])
    from .linear import emit_dense_linear
    return emit_dense_linear(bb, x, weight, bias, residual, activation=activation, name=name, ctx=ctx)
