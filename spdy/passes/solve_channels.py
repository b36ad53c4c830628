"""solve-channels: one width per coupling group, least error within the time budget.

Budget: base/speedup - fixed (DESIGN 4.2), scaled by `budget_scale` when verify-speedup's
correction loop asks for a tighter or looser one. The widths come from the iterated DP of
spdy.passes.algo.channel_solve; the channels kept in each group are chosen by CSS leverage
scores (CHEX Algorithm 2). Provides `channel_plan` for channel-surgery.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.passes.algo.channel_recon import select_channels
from spdy.passes.algo.channel_solve import solve_widths
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class SolveChannelsPass(Pass):
    name = "solve-channels"
    requires = ("channel_problem",)
    provides = ("channel_plan", "predicted_speedup")
    iterations: int = 4
    buckets: int = 10000
    fill: bool = True        # spend leftover budget by widening groups (exact re-timing; costs timings)

    def run(self, gm, ctx) -> PassResult:
        p = ctx.need("channel_problem")
        speedup = float(ctx.options.speedup)
        scale = ctx.artifacts.get("budget_scale", 1.0)
        sol = solve_widths(p.decisions, p.grid, p.errors, p.dims, p.sizes, p.timer, base=p.base, fixed=p.fixed,
                           speedup=speedup, budget_scale=scale, iterations=self.iterations, buckets=self.buckets,
                           fill=self.fill)
        keep = {}
        for gid, w in sol.widths.items():
            g = p.group(gid)
            if w < g.size:
                keep[gid] = select_channels(ctx.model, g, w)
        widths = {p.group(g).name: {"group": g, "kept": w, "of": p.sizes[g]} for g, w in sol.widths.items()}
        ctx.artifacts["channel_plan"] = {"keep": keep, "groups": p.groups, "widths": widths,
                                         "error": sol.error, "iterations": sol.iterations,
                                         "predicted_ms": sol.time * 1e3, "grams": p.grams}
        ctx.artifacts["predicted_speedup"] = sol.predicted_speedup
        return PassResult(gm, False, {"budget_scale": round(scale, 4), "groups_pruned": len(keep),
                                      "predicted_speedup": round(sol.predicted_speedup, 4),
                                      "predicted_ms": round(sol.time * 1e3, 4), "error": round(sol.error, 6),
                                      "iterations": len(sol.iterations),
                                      "timer": dict(getattr(p.timer, "stats", {}))})
