"""SPDY Algorithm 1: the layer-wise option profile of least total error within a time budget.

Problem: choose one option ``o_l`` per layer minimising ``sum_l errors[l][o_l]`` subject to
``sum_l times[l][o_l] <= budget``. Times are discretised into ``buckets`` equal steps of the
budget and solved by a dynamic program over (layer, time used), vectorised over time.

Why times are rounded *up*: the official code rounds to nearest, so the discretised profile
may exceed the real budget (its 2x target delivered 1.88x on ResNet-50). With ceil, every
profile the DP accepts satisfies the un-discretised budget; the cost is at most one bucket
of slack per layer.

Options a layer lacks are padded with ``inf`` (error or time): they are never chosen.

Budget accounting (DESIGN.md 4.2): ``budget = base / speedup - fixed``, where ``base`` is the
dense end-to-end latency and ``fixed`` the part of it no layer choice can change.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from spdy.errors import InfeasibleSpeedupError


def budget_for(base: float, fixed: float, speedup: float) -> float:
    """Time the prunable layers may take so that the whole model runs ``speedup`` x faster."""
    if base <= 0 or speedup <= 0:
        raise ValueError(f"base and speedup must be positive, got base={base}, speedup={speedup}")
    if fixed < 0:
        raise ValueError(f"fixed time must be >= 0, got {fixed}")
    return base / speedup - fixed


def _as_tables(errors, times) -> tuple[np.ndarray, np.ndarray]:
    """[L][S] float arrays with ragged rows padded by inf; validated."""
    if len(errors) != len(times):
        raise ValueError(f"errors has {len(errors)} layers but times has {len(times)}")
    if len(times) == 0:
        raise ValueError("need at least one layer")
    n_opt = max(len(r) for r in times)
    E = np.full((len(times), n_opt), np.inf)
    T = np.full((len(times), n_opt), np.inf)
    for l, (er, tr) in enumerate(zip(errors, times)):
        er, tr = np.asarray(er, dtype=float).ravel(), np.asarray(tr, dtype=float).ravel()
        if len(er) != len(tr):
            raise ValueError(f"layer {l}: {len(er)} errors but {len(tr)} times")
        E[l, :len(er)], T[l, :len(tr)] = er, tr
    if np.isnan(E).any() or np.isnan(T).any():
        raise ValueError("errors and times must not contain NaN")
    if (T < 0).any():
        raise ValueError("times must be >= 0")
    if np.isneginf(E).any():
        raise ValueError("errors must not be -inf")
    usable = np.isfinite(E) & np.isfinite(T)
    bad = np.flatnonzero(~usable.any(axis=1))
    if len(bad):
        raise ValueError(f"layers {bad.tolist()} have no option with finite error and time")
    return np.where(usable, E, np.inf), np.where(usable, T, np.inf)


def time_table(times) -> np.ndarray:
    """[L][S] float array of a (possibly ragged) latency table, rows padded with inf."""
    if len(times) == 0:
        raise ValueError("need at least one layer")
    T = np.full((len(times), max(len(r) for r in times)), np.inf)
    for l, r in enumerate(times):
        r = np.asarray(r, dtype=float).ravel()
        T[l, :len(r)] = r
    if np.isnan(T).any() or (T < 0).any():
        raise ValueError("times must be >= 0 and not NaN")
    bad = np.flatnonzero(~np.isfinite(T).any(axis=1))
    if len(bad):
        raise ValueError(f"layers {bad.tolist()} have no option with a finite time")
    return T


def min_time(times) -> float:
    """Sum over layers of each layer's fastest option: the least time any profile takes."""
    return float(time_table(times).min(axis=1).sum())


def max_speedup(times, base: float, fixed: float) -> float:
    """Largest end-to-end speedup any profile reaches: ``base / (fixed + min_time)``."""
    denom = fixed + min_time(times)
    return math.inf if denom <= 0 else base / denom


def infeasible_error(times, budget: float, base: float | None, fixed: float,
                     detail: str) -> InfeasibleSpeedupError:
    """The error for a budget no profile meets, naming requested and reachable speedup.

    Without ``base`` the reference is option 0 of every layer (dense by the grid's
    convention; a layer lacking it counts its slowest option) plus ``fixed``.
    """
    T = time_table(times)
    t_min = float(T.min(axis=1).sum())
    if base is None:
        finite = np.where(np.isfinite(T), T, -np.inf).max(axis=1)
        ref = float(np.where(np.isfinite(T[:, 0]), T[:, 0], finite).sum()) + fixed
    else:
        ref = float(base)
    requested = ref / (budget + fixed) if budget + fixed > 0 else math.inf
    reach = ref / (t_min + fixed) if t_min + fixed > 0 else math.inf
    return InfeasibleSpeedupError(requested, reach, detail)


def solve_dp(errors: Sequence[Sequence[float]], times: Sequence[Sequence[float]], budget: float,
             buckets: int = 10000, *, base: float | None = None, fixed: float = 0.0
             ) -> list[int]:
    """Option index per layer of least total error whose total time is at most ``budget``.

    ``errors``/``times``: shape [L][S] (rows may differ in length; inf marks a missing
    option). ``base``/``fixed`` are used only to word the error: when even the fastest
    profile exceeds the budget, ``InfeasibleSpeedupError`` names the requested speedup
    ``base / (budget + fixed)`` and the largest reachable one. Without ``base``, speedups
    are relative to option 0 of every layer (dense by the grid's convention) plus ``fixed``.
    """
    E, T = _as_tables(errors, times)
    if buckets < 1:
        raise ValueError(f"buckets must be >= 1, got {buckets}")
    L = E.shape[0]
    fastest = T.argmin(axis=1)
    t_min = float(T[np.arange(L), fastest].sum())
    if not (t_min <= budget):
        raise infeasible_error(T, budget, base, fixed, f"time budget {budget:.6g} < "
                               f"{t_min:.6g}, the fastest option of every layer")

    if budget <= 0:  # only all-zero-time profiles fit; pick the best among zero-time options
        Ez = np.where(T <= 0, E, np.inf)
        return [int(i) for i in Ez.argmin(axis=1)]

    step = budget / buckets
    with np.errstate(invalid="ignore", over="ignore"):
        K = np.ceil(T / step)  # round up: a discretised fit is a real fit
    K[~np.isfinite(T)] = np.inf
    if K.min(axis=1).sum() > buckets:
        # Feasible in real time but not after rounding up (times within a bucket of the
        # budget): the fastest profile is the only one we can certify.
        return [int(i) for i in fastest]
    return _dp(E, K, buckets)


def _dp(E: np.ndarray, K: np.ndarray, B: int) -> list[int]:
    """Bottom-up DP with D[l][t] = least error of the first l layers within t buckets.

    "Within" (at most t, so D is non-increasing in t) makes the answer D[L][B] and each
    option one shifted elementwise minimum; no choice table is kept: backtracking recomputes
    the argmin at the few (layer, t) cells on the optimal path, which gives the same floats.
    """
    L, S = E.shape
    ok = np.isfinite(E) & np.isfinite(K) & (K <= B)
    Ki = np.where(ok, K, 0).astype(np.int64)
    D = np.empty((L + 1, B + 1))
    D[0] = 0.0  # zero layers: error 0 within any time
    cand = np.empty(B + 1)
    for l in range(L):
        prev, cur = D[l], D[l + 1]
        cur.fill(np.inf)
        for o in np.flatnonzero(ok[l]):
            k = int(Ki[l, o])
            n = B + 1 - k
            c = cand[:n]
            np.add(prev[:n], E[l, o], out=c)
            np.minimum(cur[k:], c, out=cur[k:])
    if not np.isfinite(D[L, B]):  # cannot happen after the caller's check; be explicit
        raise AssertionError("DP found no profile within the budget")
    out = [0] * L
    t = B
    for l in range(L - 1, -1, -1):
        fits = ok[l] & (Ki[l] <= t)
        vals = np.where(fits, D[l][np.where(fits, t - Ki[l], 0)] + E[l], np.inf)
        o = int(np.argmin(vals))
        out[l] = o
        t -= int(Ki[l, o])
    return out
