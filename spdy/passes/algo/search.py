"""SPDY Algorithm 4 (search for layer sensitivities) and the uniform / GMP baselines.

Why a search over ``c`` instead of over profiles: the DP turns any sensitivity vector
``c in [0,1]^L`` into the best profile under the budget for the error model
``e_l^i = c_l * (i / (n_levels-1))**2`` (``i`` = the option's level index; with several
formats, options of the same level share ``i`` and the DP picks the faster format, ties
broken by option order). So an L-dimensional box replaces a combinatorial space, and only
``eval_loss(profile)`` (stitch the model from the reconstruction database, run it on the
calibration set) needs the model.

Search (DESIGN.md 4.4): best of ``n_random`` uniform vectors, then for
``d = ceil(0.1 L) .. 1``: ``n_local`` tries of resampling ``d`` random coordinates of the
best vector, keeping improvements. Profiles already evaluated are served from a cache
(different ``c`` often give the same profile), so ``max_evals`` counts real evaluations.
``patience`` ends a step size's tries after that many in a row without improvement: late in
the search most tries re-evaluate near-copies of the best profile (on MiniLM, 500 evaluations
took 20 minutes), and a stalled step size rarely recovers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from spdy.passes.algo.dp import infeasible_error, solve_dp, time_table

__all__ = ["SearchResult", "error_table", "search", "uniform_profile", "gmp_profile"]


def _levels(levels, shape) -> np.ndarray:
    """Level index per option, [L][S]; default: option j has level j (one format)."""
    L, S = shape
    if levels is None:
        return np.broadcast_to(np.arange(S), (L, S))
    lv = np.asarray(levels)
    if lv.ndim == 1 and len(lv) == S:
        lv = np.broadcast_to(lv, (L, S))
    if lv.shape != (L, S):
        raise ValueError(f"levels must have shape {(L, S)} or ({S},), got {lv.shape}")
    return lv


def error_table(c: Sequence[float], levels: np.ndarray, n_levels: int | None = None) -> np.ndarray:
    """``e[l, o] = c[l] * (levels[l, o] / (n_levels - 1))**2``: the error model of Algorithm 4."""
    lv = np.asarray(levels, dtype=float)
    n = int(lv.max()) + 1 if n_levels is None else int(n_levels)
    frac = lv / max(n - 1, 1)
    return np.asarray(c, dtype=float).reshape(-1, 1) * frac ** 2


@dataclass
class SearchResult:
    """Best sensitivities, their profile and loss, and one history record per try."""

    best_c: np.ndarray
    best_choice: list[int]
    best_loss: float
    history: list[dict] = field(default_factory=list)
    n_evals: int = 0
    evaluated: dict = field(default_factory=dict)   # profile (tuple) -> loss, every one evaluated

    def ranked(self, k: int) -> list[list[int]]:
        """The k distinct profiles of least loss, best first."""
        return [list(ch) for ch, _ in sorted(self.evaluated.items(), key=lambda kv: kv[1])[:k]]


def search(eval_loss: Callable[[list[int]], float], times, budget: float, n_layers: int,
           seed: int = 0, n_random: int = 100, n_local: int = 100, max_evals: int | None = None,
           progress: Callable[[int, int, float], None] | None = None, *, levels=None,
           n_levels: int | None = None, buckets: int = 10000, local_fraction: float = 0.1,
           base: float | None = None, fixed: float = 0.0, patience: int | None = None) -> SearchResult:
    """Find ``c`` whose DP profile minimises ``eval_loss``; deterministic under ``seed``.

    ``times``: [L][S] latency table (inf pads missing options). ``levels``: level index of
    each option ([L][S] or [S]; default option j -> level j). ``max_evals`` caps calls to
    ``eval_loss`` (cache hits are free). ``progress(step, total_steps, best_loss)`` is
    called after every try. Raises ``InfeasibleSpeedupError`` before any evaluation when
    the budget is out of reach (``base``/``fixed`` word it, see ``solve_dp``).
    """
    T = time_table(times)
    L, S = T.shape
    if max_evals is not None and max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    if n_layers != L:
        raise ValueError(f"n_layers={n_layers} but the latency table has {L} layers")
    lv = _levels(levels, (L, S))
    n_lv = int(lv.max()) + 1 if n_levels is None else int(n_levels)
    rng = np.random.default_rng(seed)
    d_max = max(1, math.ceil(local_fraction * L)) if L else 0
    total_steps = n_random + n_local * d_max
    cache: dict[tuple[int, ...], float] = {}
    history: list[dict] = []
    state = {"evals": 0, "step": 0}
    best = {"c": None, "choice": None, "loss": math.inf}

    def profile(c: np.ndarray) -> list[int]:
        return solve_dp(error_table(c, lv, n_lv), T, budget, buckets, base=base, fixed=fixed)

    def budget_left() -> bool:
        return max_evals is None or state["evals"] < max_evals

    def try_c(c: np.ndarray, phase: str, d: int) -> None:
        choice = profile(c)
        key = tuple(choice)
        cached = key in cache
        if not cached:
            loss = float(eval_loss(list(choice)))
            if math.isnan(loss):
                loss = math.inf  # a broken stitched model never wins
            cache[key] = loss
            state["evals"] += 1
        loss = cache[key]
        improved = loss < best["loss"] or best["c"] is None
        if improved:
            best.update(c=c.copy(), choice=list(choice), loss=loss)
        state["step"] += 1
        history.append({"step": state["step"], "phase": phase, "d": d, "loss": loss,
                        "best_loss": best["loss"], "cached": cached, "improved": improved,
                        "evals": state["evals"]})
        if progress is not None:
            progress(state["step"], total_steps, best["loss"])

    profile(np.ones(L))  # infeasible budgets fail here, before any evaluation
    for _ in range(max(1, n_random)):
        if not budget_left():
            break
        try_c(rng.uniform(0.0, 1.0, L), "random", L)
    for d in range(d_max, 0, -1):
        stale = 0
        for _ in range(n_local):
            if not budget_left() or (patience is not None and stale >= patience):
                break
            c = best["c"].copy()
            idx = rng.choice(L, size=d, replace=False)
            c[idx] = rng.uniform(0.0, 1.0, d)
            try_c(c, "local", d)
            stale = 0 if history[-1]["improved"] else stale + 1
    return SearchResult(best["c"], best["choice"], best["loss"], history, state["evals"], dict(cache))


def _by_level(T: np.ndarray, lv: np.ndarray, level: int) -> np.ndarray:
    """Per layer: the fastest option whose level is the largest available <= ``level``."""
    L, S = T.shape
    out = np.empty(L, dtype=np.int64)
    for l in range(L):
        avail = np.isfinite(T[l]) & (lv[l] <= level)
        if not avail.any():
            avail = np.isfinite(T[l]) & (lv[l] == lv[l][np.isfinite(T[l])].min())
        top = lv[l][avail].max()
        cand = np.flatnonzero(avail & (lv[l] == top))
        out[l] = cand[np.argmin(T[l, cand])]
    return out


def best_of(eval_loss: Callable[[list[int]], float], searched: SearchResult | None,
            candidates: Mapping[str, list[int]]) -> tuple[list[int], float, str]:
    """(choice, loss, winner): the searched profile, or a candidate profile of lower loss.

    The DP's error model reaches only the profiles some ``c`` makes optimal; a baseline's
    profile at the same budget may not be one of them and yet have lower loss. Letting it
    compete on the same loss means the search never returns a worse profile than it.
    ``searched`` None: only the candidates compete (the first wins ties)."""
    choice, best, won = (searched.best_choice, searched.best_loss, "dp") if searched is not None \
        else (None, math.inf, None)
    for name, cand in candidates.items():
        loss = eval_loss(list(cand))
        if loss < best:
            choice, best, won = list(cand), loss, name
    return choice, best, won


def _infeasible(T, budget, base, fixed, what):
    return infeasible_error(T, budget, base, fixed, what)


def uniform_profile(times, budget: float, levels=None, *, base: float | None = None,
                    fixed: float = 0.0) -> list[int]:
    """Baseline: one level for every layer, the lowest that fits the budget.

    With several formats the fastest format of that level is taken per layer; a layer that
    lacks the level uses its highest available level below it.
    """
    T = time_table(times)
    lv = _levels(levels, T.shape)
    for level in np.unique(lv[np.isfinite(T)]):
        ch = _by_level(T, lv, int(level))
        if T[np.arange(len(ch)), ch].sum() <= budget:
            return [int(i) for i in ch]
    raise _infeasible(T, budget, base, fixed, "no uniform level meets the time budget")


def _magnitudes(w) -> np.ndarray:
    if hasattr(w, "detach"):
        w = w.detach().cpu().float().numpy()
    return np.sort(np.abs(np.asarray(w, dtype=np.float64)).ravel())


def gmp_profile(weights: Mapping[str, object], times, level_sparsities: Sequence[float],
                budget: float, levels=None, *, base: float | None = None, fixed: float = 0.0,
                ) -> list[int]:
    """Baseline: one global magnitude threshold, bisected until the profile fits the budget.

    Each layer's sparsity at threshold ``tau`` (the fraction of its weights with
    ``|w| < tau``) is snapped to the nearest grid level; the least ``tau`` whose snapped
    profile meets the budget wins. ``weights`` is ordered like the rows of ``times``;
    ``level_sparsities[i]`` is the sparsity of level index ``i``.
    """
    T = time_table(times)
    L = T.shape[0]
    if len(weights) != L:
        raise ValueError(f"{len(weights)} weight tensors for {L} layers")
    lv = _levels(levels, T.shape)
    grid = np.asarray(level_sparsities, dtype=float)
    mags = [_magnitudes(w) for w in weights.values()]
    if any(len(m) == 0 for m in mags):
        raise ValueError("every layer needs at least one weight")

    def choice_at(tau: float) -> np.ndarray:
        s = np.array([np.searchsorted(m, tau, side="left") / len(m) for m in mags])
        snapped = np.abs(s[:, None] - grid[None, :]).argmin(axis=1)
        return np.array([_by_level(T[l:l + 1], lv[l:l + 1], int(snapped[l]))[0]
                         for l in range(L)])

    def fits(ch) -> bool:
        return T[np.arange(L), ch].sum() <= budget

    hi_tau = max(m[-1] for m in mags) * (1 + 1e-9) + 1e-30  # everything pruned
    if not fits(choice_at(hi_tau)):
        raise _infeasible(T, budget, base, fixed,
                          "even a global magnitude threshold pruning every layer to the "
                          "top level misses the time budget")
    if fits(choice_at(0.0)):
        return [int(i) for i in choice_at(0.0)]
    allm = np.unique(np.concatenate(mags))
    lo, hi = 0, len(allm)  # search over candidate thresholds allm[k] (hi: hi_tau)
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(choice_at(allm[mid])):
            hi = mid
        else:
            lo = mid + 1
    tau = allm[lo] if lo < len(allm) else hi_tau
    return [int(i) for i in choice_at(tau)]
