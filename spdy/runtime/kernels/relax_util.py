"""Small helpers for emitting our kernels into a Relax BlockBuilder."""
from __future__ import annotations

import numpy as np


def static_shape(expr) -> tuple[int, ...]:
    """The static int shape of a Relax tensor expression (our kernels need static shapes)."""
    shape = static_shape_or_none(expr)
    if shape is None:
        raise NotImplementedError(f"spdy kernels need static shapes, got {expr_type(expr).shape}")
    return shape


def static_shape_or_none(expr) -> tuple[int, ...] | None:
    """The static int shape, or None when a dim is symbolic (legalizers then fall back to TVM's)."""
    try:
        return tuple(int(d) for d in expr_type(expr).shape.values)
    except Exception:
        return None


def expr_type(expr):
    """The TensorType of a Relax expression (0.27 calls it ``.ty``, older ``struct_info``)."""
    ty = getattr(expr, "ty", None)
    return ty if ty is not None else expr.struct_info


def const(a: np.ndarray, dtype: str = "float32"):
    """A Relax constant of ``a`` converted to ``dtype`` (int8 kernels pass packed int8/int32)."""
    from tvm import relax
    return relax.const(np.ascontiguousarray(a, dtype=dtype))


def reshape(bb, x, shape):
    from tvm import relax
    if static_shape(x) == tuple(shape):
        return x
    return bb.emit(relax.op.reshape(x, list(shape)))


def call_kernel(bb, func, symbol: str, args, out_shape, dtype: str = "float32"):
    """Add ``func`` as a global PrimFunc named ``symbol`` and emit a call_tir to it
    (one output of ``out_shape`` and ``dtype``)."""
    from tvm import relax
    gvar = bb.add_func(func, symbol)
    return bb.emit(relax.call_tir(gvar, list(args), out_ty=relax.TensorType(list(out_shape), dtype)))
