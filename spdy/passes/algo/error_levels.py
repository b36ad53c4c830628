"""Place every option of a layer on one error axis: the level index of SPDY's error model.

SPDY's error model `e = c_l * (i / (S-1))**2` knows an option only by its level index i: a
sparser level of one format is a worse level. That holds within one format, and across fp32
block formats at the same level. An int8 option has no such index: dense int8 is level 0 (no
weight pruned) but not free, and sparse int8 at level i is worse than fp32 at level i. Left at
their raw index, the DP would take every int8 option as costless. So each option that is not an
fp32 sparsity level gets the level where the layer's own fp32 curve reaches the same layer
error (from the reconstruction database, plus the activation quantization's noise): its
*effective level*, a real number. The search over c then treats compound options exactly like
sparsity levels of the same measured damage, layer by layer.

Beyond the fp32 curve the model's shape is kept (e grows as i**2), so i = i_last * sqrt(e / e_last).
Without any fp32 sparse option the int8 sparse levels serve as the curve.
"""
from __future__ import annotations

import numpy as np


def effective_levels(levels, errors, reference, n_levels: int) -> np.ndarray:
    """[L, S] float levels.

    levels: [S] raw level index of each option (option 0 is dense fp32); errors: [L, S] layer errors (nan: unknown, inf
    for unavailable options is fine); reference: [S] bool, the options whose raw index is the
    error axis (fp32 sparse levels; dense fp32 is always level 0 with error 0). Options whose
    error is unknown keep their raw level.
    """
    lv = np.asarray(levels, dtype=float)
    E = np.asarray(errors, dtype=float)
    ref = np.asarray(reference, dtype=bool)
    L, S = E.shape
    out = np.broadcast_to(lv, (L, S)).astype(float).copy()
    for l in range(L):
        curve = _curve(lv, E[l], ref)
        if curve is None:
            continue
        xs, ys = curve
        for j in range(S):
            if ref[j] or j == 0 or not np.isfinite(E[l, j]):   # option 0: dense fp32
                continue
            out[l, j] = _place(E[l, j], xs, ys, n_levels)
    return out


def _curve(lv, row, ref):
    """(levels, errors) of the reference options, one error per level (the least), made
    non-decreasing; None if fewer than one finite point besides level 0."""
    pts: dict[float, float] = {0.0: 0.0}
    for j in np.flatnonzero(ref & np.isfinite(row)):
        pts[lv[j]] = min(pts.get(lv[j], np.inf), float(row[j]))
    if len(pts) < 2:
        return None
    xs = np.array(sorted(pts))
    ys = np.maximum.accumulate(np.array([pts[x] for x in xs]))
    return xs, ys


def _place(e: float, xs: np.ndarray, ys: np.ndarray, n_levels: int) -> float:
    if e <= 0:
        return 0.0
    if e <= ys[-1]:
        # the first level whose error reaches e, interpolated linearly within the step
        k = int(np.searchsorted(ys, e, side="left"))
        if k == 0:
            return float(xs[0])
        y0, y1 = ys[k - 1], ys[k]
        return float(xs[k - 1] + (xs[k] - xs[k - 1]) * ((e - y0) / (y1 - y0) if y1 > y0 else 1.0))
    return float(xs[-1] * np.sqrt(e / ys[-1])) if ys[-1] > 0 else float(n_levels - 1)
