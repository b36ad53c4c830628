"""End-to-end latency as the machines allow: interleaved rounds, medians, paired ratios.

Candidates run interleaved (A, B, A, B, ...) so a burst of background load hits every one
alike, and ratios are taken within one run. The devices (spdy.runtime.device) time their
artifacts through these; the summaries keep every round's sample so a ratio can be paired
round by round.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from spdy.runtime.measure import time_callable


def interleaved(fns: dict[str, Callable[[], object]], *, rounds: int = 7, min_time_s: float = 0.05) -> dict:
    """{name: {median_ms, p10_ms, p90_ms, n, samples_ms}} of zero-argument callables run in
    interleaved rounds; each sample is the mean call time over a block of at least min_time_s."""
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm up every candidate before timing any
    for _ in range(rounds):
        for name, fn in fns.items():
            m = time_callable(fn, repeat=1, warmup=1, min_repeat_ms=min_time_s * 1e3)
            samples[name].append(m.median * 1e3)
    return summaries(samples)


def summaries(samples: dict[str, list[float]]) -> dict:
    """{name: {median_ms, p10_ms, p90_ms, n, samples_ms}} of per-round samples in ms."""
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
