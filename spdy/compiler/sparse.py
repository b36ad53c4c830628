"""The searched sparse (and int8) compile: SPDY or one of its baselines (options.method).

    search_prep_pipeline: front end -> dense-baseline -> insert-masks [-> int8 stubs,
        calibrate-activations] -> profile-latency -> build-database
    then per round (spdy/compiler/rounds.py): solve_pipeline (solve-sparsity -> apply-profile)
        -> measure_pipeline (lower -> build -> verify-speedup -> calibrate-table)
        [-> adaprune_pipeline when global_adaprune is on and the round met the target]
        [-> every other batch size built and measured (batch_sizes); the round is judged by its
            slowest size, so a size that falls short tightens the next round's budget]
"""
from __future__ import annotations

import copy

from spdy.compiler.offered_formats import default_formats, formats_report
from spdy.compiler.rounds import run_rounds
from spdy.compiler.strategy import Strategy
from spdy.ir.batch import batch_of
from spdy.passes.algo.budget_correction import MeasuredRound, judge_round
from spdy.passes.build_buckets import build_every_size, slowest_size
from spdy.runtime.buckets import BucketedBuilt
from spdy.pipelines import adaprune_pipeline, measure_pipeline, search_prep_pipeline, solve_pipeline


class SparseStrategy(Strategy):
    name = "sparse"
    report_mode = "spdy"

    def formats(self, ctx) -> dict:
        return {"offered": list(self._offered(ctx)), **formats_report(ctx.target)}

    @staticmethod
    def _offered(ctx) -> tuple[str, ...]:
        return tuple(ctx.options.formats) if ctx.options.formats else default_formats(ctx.target)

    def run(self, ctx):
        o = ctx.options
        prep = search_prep_pipeline(formats=self._offered(ctx), levels=o.grid_levels, n_samples=o.n_samples,
                                    tune=o.tune)
        gm, _ = prep.run(None, ctx)
        steps = int(o.global_adaprune or 0)

        def attempt(ctx) -> MeasuredRound:
            # Global AdaPrune changes kept weights only, never the profile or the kernels, so it
            # cannot change the artifact's speed: it runs only for a round whose (untuned) artifact
            # met the target, and that round is rebuilt with the tuned weights. On MiniLM it costs
            # ~12 min per round, and two of three rounds missed.
            searched, _ = solve_pipeline(method=o.method, seed=o.seed, max_evals=o.max_evals).run(copy.deepcopy(gm), ctx)
            out, _ = measure_pipeline(tune=o.tune).run(copy.deepcopy(searched) if steps else searched, ctx)
            m = ctx.artifacts["verified"]
            if steps and judge_round(m["measured_speedup"], m.get("predicted_speedup"), o.speedup).meets:
                out, _ = adaprune_pipeline(steps=steps, seed=o.seed, tune=o.tune).run(searched, ctx)
            buckets = build_every_size(out, ctx, o.tune) if len(o.batch_sizes or ()) > 1 else None
            if buckets:
                m["batch_buckets"] = buckets[1]
            return MeasuredRound(judged_at_slowest_size(m, buckets), ctx.artifacts.get("calib_loss", 0.0),
                                 (out, ctx.artifacts["executable"], ctx.artifacts["profile"], m, buckets))

        def adopt(chosen: MeasuredRound) -> None:
            loss, (out, built, profile, m, buckets) = chosen.loss, chosen.payload
            ctx.artifacts.update(executable=built, profile=profile, verified=m, calib_loss=loss,
                                 predicted_speedup=m["predicted_speedup"],
                                 pruned={k: v["sparsity"] for k, v in profile.items() if v["format"] != "dense"})
            if buckets:
                ctx.artifacts.update(bucketed=BucketedBuilt(buckets[0], batch_of(ctx.inputs)), batch_buckets=buckets[1])

        chosen = run_rounds(ctx, attempt, adopt)
        return chosen.payload[0]


def judged_at_slowest_size(verified: dict, buckets) -> dict:
    """The record a round is judged by: verify-speedup's own, or with several batch sizes the
    same record carrying the slowest size's speedup (`judged_at_batch` names it)."""
    worst = slowest_size(buckets[1]) if buckets else None
    if worst is None or worst["measured_speedup"] >= verified["measured_speedup"]:
        return verified
    return dict(verified, measured_speedup=worst["measured_speedup"], judged_at_batch=worst["batch"])
