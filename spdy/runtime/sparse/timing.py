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
    return float(np.median(time_samples(kernel, x, extra, target, number=number, repeat=repeat)))


def time_samples(kernel, x: np.ndarray, extra: list[np.ndarray], target, *,
                 number: int = 10, repeat: int = 5) -> list[float]:
    """Per-repeat mean seconds (each over `number` calls) of a SparseKernel."""
    import tvm
    ex = tvm.tirx.build(kernel.func, target)
    dev = tvm.cpu()
    args = [tvm.runtime.tensor(np.ascontiguousarray(a), dev)
            for a in [x, *kernel.consts, *extra, np.zeros(kernel.out_shape, np.float32)]]
    symbol = str(kernel.func.attrs["global_symbol"])
    ev = ex.time_evaluator(symbol, dev, number=number, repeat=repeat, min_repeat_ms=0)
    return [float(r) for r in ev(*args).results]


def best_params(build, cands, x, extra, target, **kw):
    """(params, samples of the best, {params: min seconds}) of the fastest candidate.

    Candidates are ranked by their fastest repeat: on a shared machine the minimum is the
    estimate least disturbed by other processes. build(params) -> SparseKernel.
    """
    samples = {p: time_samples(build(p), x, extra, target, **kw) for p in cands}
    best = min(samples, key=lambda p: min(samples[p]))
    return best, samples[best], {p: min(v) for p, v in samples.items()}


def run_kernel(kernel, x: np.ndarray, extra: list[np.ndarray], target) -> np.ndarray:
    """Run a SparseKernel once and return its output (numerics checks in benches)."""
    import tvm
    lib = tvm.tirx.build(kernel.func, target)
    args = [tvm.runtime.tensor(np.ascontiguousarray(a))
            for a in [x, *kernel.consts, *extra, np.zeros(kernel.out_shape, np.float32)]]
    lib[str(kernel.func.attrs["global_symbol"])](*args)
    return args[-1].numpy()
