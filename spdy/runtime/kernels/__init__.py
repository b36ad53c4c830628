"""Kernel emitters called by the lowering for each spdy conv/linear op, and our Relax pipeline.

emit_conv2d / emit_linear emit ``call_tir`` of register-tiled TIR kernels (see gemm.py) with
pre-packed constant weights and fused bias/residual/activation epilogues; layers listed in
``ctx.sparse`` go to ``spdy.runtime.sparse``. ``relax_pipeline`` schedules everything else and
refuses to build a module with an unscheduled op.
"""
from __future__ import annotations

import numpy as np

from .check import UnscheduledOpError, check_scheduled
from .pipeline import relax_pipeline

ACTIVATIONS = ("none", "relu", "relu6", "gelu")

__all__ = ["emit_conv2d", "emit_linear", "relax_pipeline", "UnscheduledOpError", "check_scheduled"]


def _sparse(kind: str, name: str):
    try:
        from spdy.runtime import sparse
        return getattr(sparse, f"emit_sparse_{kind}")
    except (ImportError, AttributeError) as e:
        raise NotImplementedError(f"layer {name!r} is marked sparse but spdy.runtime.sparse "
                                  f"has no emit_sparse_{kind}: {e}") from e


def emit_conv2d(bb, x, weight: np.ndarray, bias, residual, *, stride, padding, dilation,
                groups, activation, name, ctx):
    """y = act(conv2d(x, weight) + bias[None,:,None,None] + residual), NCHW in and out.

    padding is (top, left, bottom, right).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    kw = dict(stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation),
              groups=groups, activation=activation, name=name, ctx=ctx)
    if name in ctx.sparse:
        return _sparse("conv2d", name)(bb, x, weight, bias, residual, spec=ctx.sparse[name], **kw)
    from .conv import emit_dense_conv2d
    return emit_dense_conv2d(bb, x, weight, bias, residual, **kw)


def emit_linear(bb, x, weight: np.ndarray, bias, residual, *, activation, name, ctx):
    """y = act(x @ weight.T + bias + residual) over the last axis of x."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    if name in ctx.sparse:
        return _sparse("linear", name)(bb, x, weight, bias, residual, activation=activation,
                                       name=name, ctx=ctx, spec=ctx.sparse[name])
    from .linear import emit_dense_linear
    return emit_dense_linear(bb, x, weight, bias, residual, activation=activation, name=name, ctx=ctx)
