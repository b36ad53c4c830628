"""End-to-end latency, measured as the machines allow: interleaved rounds, medians.

Runs are interleaved (A, B, A, B, ...) so a burst of background load hits every candidate
alike, and ratios are taken within one run.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def time_callable(fn: Callable[[], object], *, min_time_s: float = 0.05) -> float:
    """Seconds per call: repeat fn until min_time_s has passed, return the mean of that block."""
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time_s:
            return elapsed / n


def interleaved(fns: dict[str, Callable[[], object]], *, rounds: int = 7, min_time_s: float = 0.05) -> dict:
    """{name: {median_ms, p10_ms, p90_ms, n}} from interleaved rounds."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm up every candidate before timing any
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(time_callable(fn, min_time_s=min_time_s) * 1e3)
    return _summaries(samples)


def _summaries(samples: dict[str, list[float]]) -> dict:
    return {k: {"median_ms": float(np.median(v)), "p10_ms": float(np.percentile(v, 10)),
                "p90_ms": float(np.percentile(v, 90)), "n": len(v), "samples_ms": [round(x, 5) for x in v]}
            for k, v in samples.items()}


def _paired_ratios(res: dict, slow: str, fast: str) -> np.ndarray | None:
    """slow_i / fast_i for each interleaved round, or None when the samples are not kept."""
    a, b = res[slow].get("samples_ms"), res[fast].get("samples_ms")
    if not a or not b or len(a) != len(b):
        return None
    return np.asarray(a) / np.asarray(b)


def paired_spread(res: dict, slow: str, fast: str) -> tuple[float, float] | None:
    """(10th, 90th percentile) of the per-round ratios slow_i / fast_i, or None without samples.
    A wide spread says the machine changed speed during the measurement."""
    r = _paired_ratios(res, slow, fast)
    return None if r is None else (float(np.percentile(r, 10)), float(np.percentile(r, 90)))


def paired_speedup(res: dict, slow: str, fast: str) -> float:
    """Median over interleaved rounds of slow_i / fast_i.

    Each round times the candidates back to back, so a stretch where this machine runs slow
    (on the 2-core VMs a kernel flips between ~0.35 and ~0.9 ms for seconds at a time) hits
    both samples of a round alike; the ratio within a round cancels it, where the ratio of two
    medians can take one candidate's slow samples against the other's fast ones."""
    r = _paired_ratios(res, slow, fast)
    return res[slow]["median_ms"] / res[fast]["median_ms"] if r is None else float(np.median(r))


def interleaved_on_device(device, executables: dict, arrays, *, rounds: int = 7, min_time_s: float = 0.05) -> dict:
    """Like `interleaved`, for Relax executables timed on a (remote) spdy.runtime.device: each
    sample is one time-evaluator run of at least min_time_s on the device, so the network round
    trip is outside the timed region."""
    samples: dict[str, list[float]] = {k: [] for k in executables}
    for ex in executables.values():
        device.time_vm(ex, arrays, repeat=1, min_repeat_ms=0)  # upload and warm up every candidate first
    for _ in range(rounds):
        for name, ex in executables.items():
            m = device.time_vm(ex, arrays, repeat=1, min_repeat_ms=min_time_s * 1e3)
            samples[name].append(m.median * 1e3)
    return _summaries(samples)


def torch_eager_fn(model, args, kwargs, threads: int):
    import torch

    def run():
        prev = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                model(*args, **kwargs)
        finally:
            torch.set_num_threads(prev)
    return run


def artifact_fn(runner, arrays):
    import_tvm = runner._tvm
    tvm_in = [import_tvm.runtime.tensor(a, runner.device) for a in arrays]
    main = runner.vm["main"]
    return lambda: main(*tvm_in)
