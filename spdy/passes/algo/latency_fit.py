"""Pure helpers that turn a few noisy kernel timings into a full latency-table row.

Why not time every level: a block-sparse kernel's work is proportional to its nonzero
blocks, so its latency is close to linear in density between neighbouring grid levels.
Timing every 4th level (11 of 41) and interpolating in density costs a quarter of the
tuning builds (the dominant cost of a latency table: ~1 s per option) for an error far
below the run-to-run noise of this machine; `verify-speedup` measures the real artifact
anyway. The timed levels are recorded so the table says which entries were measured.

Why an outlier check: on a shared CPU one burst of load during one option's timing makes it
look slower than its denser neighbour. Upward outliers are re-timed (the caller keeps the
lower of the two) and the row is then made monotone in sparsity.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def anchor_indices(n: int, every: int) -> list[int]:
    """Indices 0, every, 2*every, ... of n levels; the last level is always included."""
    if n <= 0:
        return []
    every = max(1, int(every))
    idx = list(range(0, n, every))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


def interpolate_in_density(sparsities: Sequence[float], anchors: Sequence[int],
                           anchor_times: Sequence[float]) -> np.ndarray:
    """Times at every sparsity, linear in density between the timed anchors.

    Outside the anchors' range the nearest anchor's time is used (never extrapolated:
    a line through two noisy points can go negative).
    """
    s = np.asarray(sparsities, dtype=float)
    if len(anchors) != len(anchor_times) or not len(anchors):
        raise ValueError("need one time per anchor and at least one anchor")
    d_anchor = 1.0 - s[list(anchors)]
    order = np.argsort(d_anchor)
    return np.interp(1.0 - s, d_anchor[order], np.asarray(anchor_times, dtype=float)[order])


def upward_outliers(sparsities: Sequence[float], times: Sequence[float], tolerance: float = 0.25) -> list[int]:
    """Indices (into ascending-sparsity `times`) slower than their neighbours explain.

    A point is an outlier when it is more than `tolerance` above the line through its two
    neighbours (or, at the ends, above its denser neighbour: a sparser kernel never needs
    more time). Only upward deviations count: background load only ever slows a kernel down.
    """
    s = np.asarray(sparsities, dtype=float)
    t = np.asarray(times, dtype=float)
    out = []
    for i in range(len(t)):
        if i == 0:
            continue  # nothing denser to compare with inside this format
        if i == len(t) - 1:
            ref = t[i - 1]
        else:
            d0, d1, d2 = 1 - s[i - 1], 1 - s[i], 1 - s[i + 1]
            w = (d1 - d2) / (d0 - d2) if d0 != d2 else 0.5
            ref = w * t[i - 1] + (1 - w) * t[i + 1]
        if t[i] > ref * (1 + tolerance):
            out.append(i)
    return out
