"""Measured latency of one dense conv/linear layer as it runs in an artifact.

The latency table (DESIGN.md 4.2) needs t[l][dense] for every prunable layer: the whole
layer (padding + im2col + GEMM + epilogue, as emitted), not just the GEMM the tuner times.
We build a one-layer Relax module through the same emitters, time it with time_evaluator,
and cache the median in the latency DB (format "dense", level 0, signature "layer:...").
"""
from __future__ import annotations

import numpy as np

from ..measure import time_module
from .select import kernel_source_hash

LAYER_SOURCE_HASH = kernel_source_hash("gemm.py", "tvmscript.py", "im2col.py", "conv.py", "linear.py")


def layer_signature(kind: str, x_shape, weight_shape, **kw) -> str:
    items = ",".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in sorted(kw.items()))
    return f"layer:{kind}:x={tuple(x_shape)},w={tuple(weight_shape)},{items}"


def _build(kind, x_shape, weight_shape, kw, has_bias, target, tuner):
    import tvm
    from tvm import relax
    from ..emit_context import EmitContext
    from . import emit_conv2d, emit_linear, relax_pipeline
    rng = np.random.default_rng(0)
    w = rng.standard_normal(weight_shape).astype("float32")
    b = rng.standard_normal(weight_shape[0]).astype("float32") if has_bias else None
    ctx = EmitContext(target=target, tuner=tuner)
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(list(x_shape), "float32"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            if kind == "conv2d":
                y = emit_conv2d(bb, xv, w, b, None, name="layer", ctx=ctx, **kw)
            else:
                y = emit_linear(bb, xv, w, b, None, name="layer", ctx=ctx, **kw)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    ex = tvm.compile(bb.get(), target, relax_pipeline=relax_pipeline(target, ctx))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm, [tvm.runtime.tensor(rng.standard_normal(x_shape).astype("float32"))]


def dense_layer_latency(kind: str, x_shape, weight_shape, *, target, tuner=None, has_bias: bool = True,
                        repeat: int = 7, min_repeat_ms: float = 20.0, **kw) -> float:
    """Median seconds of one dense layer. kind: "conv2d" (kw: stride, padding, dilation,
    groups, activation) or "linear" (kw: activation). Cached in ``tuner``'s DB when it has one."""
    if kind not in ("conv2d", "linear"):
        raise ValueError(f"kind must be conv2d or linear, not {kind!r}")
    kw.setdefault("activation", "none")
    if kind == "conv2d":
        kw.setdefault("stride", (1, 1))
        kw.setdefault("padding", (0, 0, 0, 0))
        kw.setdefault("dilation", (1, 1))
        kw.setdefault("groups", 1)
    sig = layer_signature(kind, x_shape, weight_shape, bias=has_bias, **kw)
    db = tuner._db() if tuner is not None and tuner.mode == "tune" else None
    key = tuner.key(sig, LAYER_SOURCE_HASH) if db is not None else None
    if db is not None:
        hit = db.get(key)
        if hit is not None:
            return hit.latency_s
    vm, args = _build(kind, tuple(x_shape), tuple(weight_shape), kw, has_bias, target, tuner)
    m = time_module(vm, "main", args, repeat=repeat, min_repeat_ms=min_repeat_ms)
    if db is not None:
        db.put(key, {}, m.median, m.p10, m.p90, m.n)
    return m.median
