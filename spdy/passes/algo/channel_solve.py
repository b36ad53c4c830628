"""Per-group widths of least error within a time budget, when layer times couple groups.

A conv's time depends on its input width (the producer group's choice) and its output
width (its own group's choice), so the latency table is not separable per decision. We
charge each layer to its output group, time it at the input width of the *current*
solution, solve the DP (SPDY Algorithm 1, one row per group), re-time every layer at the
widths just chosen and repeat (a fixed-point iteration; a few rounds settle). Every
solution is priced *consistently* (each layer at its own in/out widths) before it is
accepted: only a solution whose consistent time fits the budget counts as feasible; when
none does, the variable budget shrinks by the overshoot and the DP runs again.

Layers whose output group is not a decision (the classifier, the stem's input side) are
"passive": their time follows their input group and counts against the budget as a
constant of the round.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from spdy.errors import InfeasibleSpeedupError
from spdy.passes.algo.channel_widths import LayerDims, owner_of
from spdy.passes.algo.dp import solve_dp

Timer = Callable[[str, int, int], float]   # (layer qualname, in channels, out channels) -> seconds


@dataclass
class ChannelSolution:
    widths: dict[int, int]          # group id -> kept channels
    time: float                     # consistent predicted end-to-end seconds (fixed + layers)
    error: float                    # DP objective: summed relative consumer errors
    predicted_speedup: float
    iterations: list[dict] = field(default_factory=list)


def total_time(dims: dict[str, LayerDims], sizes: dict[int, int], widths: dict[int, int], timer: Timer,
               fixed: float) -> float:
    return fixed + sum(timer(q, *d.dims(sizes, widths)) for q, d in dims.items())


def solve_widths(decisions: list[int], grid: dict[int, list[int]], errors: dict[int, list[float]],
                 dims: dict[str, LayerDims], sizes: dict[int, int], timer: Timer, *, base: float,
                 fixed: float, speedup: float, budget_scale: float = 1.0, iterations: int = 4,
                 buckets: int = 10000, fill: bool = True) -> ChannelSolution:
    """Iterate DP solve <-> re-time (see module doc). Raises InfeasibleSpeedupError when even
    the narrowest width of every group misses the target."""
    if not decisions:
        raise InfeasibleSpeedupError(speedup, 1.0, "the model has no prunable channel group")
    dec = set(decisions)
    owned: dict[int, list[str]] = {g: [] for g in decisions}
    passive: list[str] = []
    for q, d in dims.items():
        g = owner_of(d, dec)
        (owned[g] if g is not None else passive).append(q)
    full = dict(sizes)
    narrowest = {g: min(grid[g]) for g in decisions}
    t_min = total_time(dims, sizes, {**full, **narrowest}, timer, fixed)
    reach = base / t_min if t_min > 0 else math.inf
    target_total = fixed + (base / speedup - fixed) * budget_scale   # what the artifact may take
    if t_min > target_total:
        raise InfeasibleSpeedupError(
            speedup / budget_scale if budget_scale != 1.0 else speedup, reach,
            f"even the narrowest width of every channel group ({sum(narrowest.values())} of "
            f"{sum(sizes[g] for g in decisions)} channels) is predicted at {t_min * 1e3:.3f} ms "
            f"against a budget of {target_total * 1e3:.3f} ms (base {base * 1e3:.3f} ms)")
    cur = dict(full)
    shrink = 1.0
    best: ChannelSolution | None = None
    log = []
    seen = set()
    for it in range(max(1, iterations)):
        T = []
        for g in decisions:
            row = []
            for w in grid[g]:
                trial = {**cur, g: w}
                row.append(sum(timer(q, *dims[q].dims(sizes, trial)) for q in owned[g]))
            T.append(row)
        t_passive = sum(timer(q, *dims[q].dims(sizes, cur)) for q in passive)
        budget = (target_total - fixed) * shrink - t_passive
        E = [errors[g] for g in decisions]
        try:
            choice = solve_dp(E, T, budget, buckets, base=base, fixed=fixed + t_passive)
        except InfeasibleSpeedupError:
            choice = [int(np.argmin(row)) for row in T]   # the current table is pessimistic: go narrow
        sol = {g: grid[g][c] for g, c in zip(decisions, choice)}
        t = total_time(dims, sizes, {**full, **sol}, timer, fixed)
        err = float(sum(errors[g][c] for g, c in zip(decisions, choice)))
        cand = ChannelSolution(sol, t, err, base / t)
        ok = t <= target_total * (1 + 1e-9)
        log.append({"iteration": it, "budget_ms": round(budget * 1e3, 4), "passive_ms": round(t_passive * 1e3, 4),
                    "predicted_ms": round(t * 1e3, 4), "predicted_speedup": round(base / t, 4),
                    "error": round(err, 6), "feasible": ok, "shrink": round(shrink, 4)})
        if ok and (best is None or err < best.error):
            best = cand
        if not ok:   # consistent time over the target: the table was optimistic
            var, allowed = t - fixed, target_total - fixed
            shrink *= max(0.5, allowed / var) if var > 0 else 1.0
        key = tuple(sorted(sol.items()))
        if ok and key in seen:
            break
        seen.add(key)
        # damped step: move the assumed neighbour widths halfway (geometrically) to the new
        # solution, so a pessimistic table (full neighbours) and an optimistic one (narrow
        # neighbours) do not alternate forever
        cur = {**full, **{g: _nearest(grid[g], math.sqrt(cur[g] * w)) if it < iterations - 2 else w
                          for g, w in sol.items()}}
    if best is None:   # no iteration fitted: the narrowest profile does (checked above)
        err = float(sum(errors[g][grid[g].index(narrowest[g])] for g in decisions))
        best = ChannelSolution(dict(narrowest), t_min, err, base / t_min)
        log.append({"iteration": len(log), "fallback": "narrowest", "predicted_ms": round(t_min * 1e3, 4),
                    "predicted_speedup": round(base / t_min, 4), "error": round(err, 6), "feasible": True})
    chosen = widen_fill(best, decisions, grid, errors, dims, sizes, timer, fixed, target_total) if fill else best
    chosen.predicted_speedup = base / chosen.time
    if chosen is not best:
        log.append({"iteration": len(log), "widen_fill": True, "predicted_ms": round(chosen.time * 1e3, 4),
                    "predicted_speedup": round(base / chosen.time, 4), "error": round(chosen.error, 6),
                    "feasible": True})
    chosen.iterations = log
    return chosen


def _nearest(widths: list[int], w: float) -> int:
    return min(widths, key=lambda v: (abs(v - w), -v))


def widen_fill(sol: ChannelSolution, decisions, grid, errors, dims, sizes, timer: Timer, fixed: float,
               limit: float, max_steps: int = 1000) -> ChannelSolution:
    """Spend what the budget has left: widen one group by one grid step at a time, the step
    with the most error removed per second of (consistently timed) extra latency, while the
    whole model still fits `limit`. The DP's table times a layer at assumed neighbour widths;
    this pass uses exact ones, so it recovers the slack a pessimistic table leaves."""
    widths, t, err = dict(sol.widths), sol.time, sol.error
    changed = False
    for _ in range(max_steps):
        best = None
        for g in decisions:
            i = grid[g].index(widths[g])
            if i == 0:
                continue
            w = grid[g][i - 1]                      # grid is widest first
            de = errors[g][i] - errors[g][i - 1]
            if de <= 0:
                continue
            t2 = total_time(dims, sizes, {**sizes, **widths, g: w}, timer, fixed)
            if t2 > limit * (1 + 1e-9):
                continue
            score = de / max(t2 - t, 1e-12)
            if best is None or score > best[0]:
                best = (score, g, w, t2, de)
        if best is None:
            break
        _, g, w, t, de = best
        widths[g] = w
        err -= de
        changed = True
    if not changed:
        return sol
    return ChannelSolution(widths, t, max(0.0, err), sol.predicted_speedup)
