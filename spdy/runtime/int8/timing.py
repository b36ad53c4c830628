"""Latency of an int8 Linear layer as the artifact runs it, for SPDY's latency table.

Built as a one-function Relax module through the same emitter (same tuned parameters,
constants and epilogue) and timed with the VM's time evaluator, like the dense option in
spdy/runtime/layer_latency.py. The quantization of x happens inside the layer's kernel, so
this is the whole layer; the reshapes around it are views.
"""
from __future__ import annotations

import numpy as np

from spdy.qscheme import ActQuant
from spdy.runtime.device import LOCAL


def build_int8_linear_module(x_shape, w_q, w_scale, *, has_bias: bool, has_residual: bool, activation: str,
                             act: ActQuant, fmt: str, ctx, seed: int = 0):
    """(Relax executable, numpy inputs) of main(x[, residual]) = the layer on random data."""
    import tvm
    from tvm import relax
    from spdy.runtime.kernels import relax_pipeline
    from .emit import emit_int8_linear
    rng = np.random.default_rng(seed)
    w_q = np.asarray(w_q)
    n = w_q.shape[0]
    x_shape = tuple(int(d) for d in x_shape)
    out_shape = x_shape[:-1] + (n,)
    bias = rng.standard_normal(n).astype(np.float32) if has_bias else None
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(list(x_shape), "float32"))
    params = [x]
    res = None
    if has_residual:
        res = relax.Var("res", relax.TensorType(list(out_shape), "float32"))
        params.append(res)
    with bb.function("main", params):
        with bb.dataflow():
            y = emit_int8_linear(bb, x, w_q, w_scale, bias, res, act=act, fmt=fmt, activation=activation,
                                 name="layer", ctx=ctx)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    ex = tvm.compile(bb.get(), ctx.target, relax_pipeline=relax_pipeline(ctx.target, ctx))
    arrays = [rng.standard_normal(x_shape).astype(np.float32)]
    if has_residual:
        arrays.append(rng.standard_normal(out_shape).astype(np.float32))
    return ex, arrays


def time_int8_linear(x_shape, w_q, w_scale, *, has_bias: bool, has_residual: bool, activation: str,
                     act: ActQuant, fmt: str, ctx, repeat: int = 5, min_repeat_ms: float = 10) -> float:
    """Median seconds of everything the emitter emits for the layer (with ctx's tuned params)."""
    from spdy.runtime.threads import ensure_threads
    ensure_threads(default=int(getattr(ctx, "num_threads", 0) or 0) or None)
    ex, arrays = build_int8_linear_module(x_shape, w_q, w_scale, has_bias=has_bias, has_residual=has_residual,
                                          activation=activation, act=act, fmt=fmt, ctx=ctx)
    # timed on the tuner's measuring device (spdy.runtime.device), this CPU without one
    device = getattr(getattr(ctx, "tuner", None), "device", None) or LOCAL
    return float(np.median(device.time_vm_samples(ex, arrays, repeat=repeat, min_repeat_ms=min_repeat_ms)))
