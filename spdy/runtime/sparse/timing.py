"""Compile and time one sparse kernel candidate; pick the fastest of a candidate list.

Why here and not in spdy/runtime/tune.py: that generic tuner (dense-kernel helper) did not
exist when these kernels were written; this is the minimal stand-in (build, run once,
time with time_evaluator, median). Swap `best_params` for `tune.tune_kernel` once it lands.
"""
from __future__ import annotations

import numpy as np


def time_kernel(kernel, x: np.ndarray, extra: list[np.ndarray], target, *,
                number: int = 10, repeat: int = 5) -> float:
    """Median seconds of one call of a SparseKernel on input x (+ bias/residual arrays)."""
    import tvm
    ex = tvm.tirx.build(kernel.func, target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.ascontiguousarray(a), dev)
            for a in [x, *kernel.consts, *extra, np.zeros(kernel.out_shape, np.float32)]]
    symbol = str(kernel.func.attrs["global_symbol"])
    ev = ex.time_evaluator(symbol, dev, number=number, repeat=repeat, min_repeat_ms=0)
    return float(np.median(ev(*args).results))


def best_params(build, cands, x, extra, target, **kw):
    """(params, seconds, all timings) of the fastest candidate; build(params) -> SparseKernel."""
    times = {}
    for p in cands:
        times[p] = time_kernel(build(p), x, extra, target, **kw)
    best = min(times, key=times.get)
    return best, times[best], times


def run_kernel(kernel, x: np.ndarray, extra: list[np.ndarray], target) -> np.ndarray:
    """Run a SparseKernel once and return its output (numerics checks in benches)."""
    import tvm
    lib = tvm.tirx.build(kernel.func, target)
    args = [tvm.runtime.tensor(np.ascontiguousarray(a))
            for a in [x, *kernel.consts, *extra, np.zeros(kernel.out_shape, np.float32)]]
    lib[str(kernel.func.attrs["global_symbol"])](*args)
    return args[-1].numpy()
