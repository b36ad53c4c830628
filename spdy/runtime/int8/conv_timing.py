"""Latency of an int8 conv layer as the artifact runs it: every kernel the emitter emits.

For SPDY's latency table: the pack kernel (and the min/max kernel in dynamic mode) is part
of the layer's cost, so the tuner's conv-only time is not enough. The layer is built as a
one-function Relax module with the same emitter (same tuned parameters, same epilogue) and
timed with the VM's time evaluator, like spdy/runtime/layer_latency.py's dense option.
"""
from __future__ import annotations

import numpy as np

from spdy.qscheme import ActQuant
from spdy.runtime.device import LOCAL


def build_int8_conv_module(x_shape, w_q, w_scale, *, stride, padding, dilation, groups, has_bias: bool,
                           has_residual: bool, activation: str, act: ActQuant, fmt: str, ctx, seed: int = 0):
    """(Relax executable, numpy inputs) of main(x[, residual]) = the layer."""
    import tvm
    from tvm import relax
    from spdy.runtime.kernels import relax_pipeline
    from .conv_emit import emit_int8_conv2d, int8_conv_layer
    rng = np.random.default_rng(seed)
    w_q = np.asarray(w_q, np.int8)
    bias = rng.standard_normal(w_q.shape[0]).astype(np.float32) if has_bias else None
    g = int8_conv_layer(x_shape, w_q, w_scale, bias, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, act=act, fmt=fmt, activation=activation, has_residual=has_residual,
                        target=ctx.target).g
    out_shape = (g.n, g.o, g.oh, g.ow)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(list(x_shape), "float32"))
    params, res = [x], None
    if has_residual:
        res = relax.Var("res", relax.TensorType(list(out_shape), "float32"))
        params.append(res)
    with bb.function("main", params):
        with bb.dataflow():
            y = emit_int8_conv2d(bb, x, w_q, w_scale, bias, res, stride=stride, padding=padding,
                                 dilation=dilation, groups=groups, act=act, fmt=fmt, activation=activation,
                                 name="layer", ctx=ctx)
            out = bb.emit_output(y)
        bb.emit_func_output(out)
    ex = tvm.compile(bb.get(), ctx.target, relax_pipeline=relax_pipeline(ctx.target, ctx))
    arrays = [rng.standard_normal(tuple(x_shape)).astype(np.float32)]
    if has_residual:
        arrays.append(rng.standard_normal(out_shape).astype(np.float32))
    return ex, arrays


def time_int8_conv2d(x_shape, w_q, w_scale, *, stride, padding, dilation, groups, has_bias: bool,
                     has_residual: bool, activation: str, act: ActQuant, fmt: str, ctx, repeat: int = 5,
                     min_repeat_ms: float = 10) -> float:
    """Median seconds of one call of all the layer's kernels (pack + conv; dynamic: + min/max)."""
    from spdy.runtime.threads import ensure_threads
    ensure_threads(default=int(getattr(ctx, "num_threads", 0) or 0) or None)
    ex, arrays = build_int8_conv_module(x_shape, w_q, w_scale, stride=stride, padding=padding, dilation=dilation,
                                        groups=groups, has_bias=has_bias, has_residual=has_residual,
                                        activation=activation, act=act, fmt=fmt, ctx=ctx)
    # timed on the tuner's measuring device (spdy.runtime.device), this CPU without one
    device = getattr(getattr(ctx, "tuner", None), "device", None) or LOCAL
    return float(np.median(device.time_vm_samples(ex, arrays, repeat=repeat, min_repeat_ms=min_repeat_ms)))
