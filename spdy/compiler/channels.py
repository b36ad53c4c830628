"""The structured (mode="channels") compile: widths per coupling group, measured end to end.

    front end -> dense-baseline -> profile-channels -> profile-channel-anchors
    then per round (spdy/compiler/rounds.py): solve-channels -> channel-surgery -> [the pruned
    model, a child context] dense_pipeline without measuring -> verify-speedup

The pruned model is a smaller *dense* torch model, so it goes through the normal dense
lowering. Layer times come from built artifacts (profile-channels, algo/channel_latency.py):
the dense one, uniformly narrowed anchors, and each measured round, whose in-place layer
times join the timer before the next solve (calibrate_round; the next budget then keeps only
the residual, as calibrate-table does for sparse compiles). verify-speedup measures it
against the dense artifact of the original model; the correction loop is the sparse
compile's. The strategy's fields are the search's settings (not compile options).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from spdy.compiler.rounds import run_rounds
from spdy.compiler.strategy import Strategy
from spdy.passes.algo.budget_correction import MeasuredRound
from spdy.passes.channel_surgery import ChannelSurgeryPass
from spdy.passes.child_build import build_model_artifact
from spdy.passes.dense_baseline import DenseBaselinePass
from spdy.passes.pipeline import Pipeline
from spdy.passes.profile_channel_anchors import ProfileChannelAnchorsPass, calibrate_round
from spdy.passes.profile_channels import ProfileChannelsPass
from spdy.passes.solve_channels import SolveChannelsPass
from spdy.passes.verify_speedup import VerifySpeedupPass
from spdy.pipelines import frontend_pipeline


@torch.no_grad()
def calib_output_error(dense: torch.nn.Module, pruned: torch.nn.Module, calib, max_batches: int = 4) -> float:
    """Relative squared error of the pruned model's outputs against the dense model's."""
    if calib is None:
        return 0.0
    num = den = 0.0
    for batch in calib.inputs[:max_batches]:
        args = batch if isinstance(batch, (tuple, list)) else (batch,)
        a, b = dense(*args), pruned(*args)
        a = a[0] if isinstance(a, (tuple, list)) else a
        b = b[0] if isinstance(b, (tuple, list)) else b
        num += float(((a - b).double() ** 2).sum())
        den += float((a.double() ** 2).sum())
    return num / den if den > 0 else num


# what a round's child context hands back
_KEPT = ("onnxruntime_session", "reference_notes")


def build_and_verify(ctx, pruned: torch.nn.Module, tune: bool) -> dict:
    """Lower the pruned dense model with the dense pipeline and measure it against the dense artifact."""
    ctx.artifacts.setdefault("rounds", [])   # the child appends its measurement to the compile's rounds
    child = build_model_artifact(ctx, pruned, tune)
    child.model = ctx.model   # PyTorch eager in the report is the user's (unpruned) model, as for sparse compiles
    Pipeline([VerifySpeedupPass()]).run(None, child)
    ctx.artifacts["executable"] = child.artifacts["executable"]
    ctx.artifacts["layers_pruned"] = child.artifacts.get("layers")
    for k in _KEPT:  # the onnxruntime session is exported once, not once per round
        if k in child.artifacts:
            ctx.artifacts[k] = child.artifacts[k]
    return child.artifacts["verified"]


@dataclass(frozen=True)
class ChannelsStrategy(Strategy):
    name = report_mode = "channels"
    ratios: tuple | None = None        # keep-ratio grid of every group; None: channel_widths.DEFAULT_RATIOS
    iterations: int = 4                # solve <-> re-time rounds of solve-channels (new widths cost timings)
    fill: bool = True                  # solve-channels' widen-fill step
    anchors: tuple = (0.7, 0.4)        # uniformly narrowed models built and profiled in place first

    def run(self, ctx):
        tune = ctx.options.tune
        profile_pass = ProfileChannelsPass(ratios=tuple(self.ratios)) if self.ratios else ProfileChannelsPass()
        frontend_pipeline(DenseBaselinePass(tune=tune), profile_pass,
                          ProfileChannelAnchorsPass(ratios=tuple(self.anchors), tune=tune)).run(None, ctx)
        problem = ctx.artifacts["channel_problem"]

        def attempt(ctx) -> MeasuredRound:
            Pipeline([SolveChannelsPass(iterations=self.iterations, fill=self.fill), ChannelSurgeryPass()]).run(None, ctx)
            plan, pruned = ctx.artifacts["channel_plan"], ctx.artifacts["pruned_model"]
            m = build_and_verify(ctx, pruned, tune)
            # the timer learns this round's widths as they ran; the next solve prices them so
            m["channel_calibration"] = calibrate_round(problem, m, {v["group"]: v["kept"] for v in plan["widths"].values()})
            m["widths"] = {name: v["kept"] for name, v in plan["widths"].items()}
            m["predicted_ms"] = round(plan["predicted_ms"], 4)
            m["solver_iterations"] = plan["iterations"]
            loss = calib_output_error(ctx.model, pruned, ctx.artifacts.get("calib"))
            m["calib_output_rel_err"] = loss
            return MeasuredRound(m, loss, (pruned, ctx.artifacts["executable"], plan, ctx.artifacts["channel_history"]))

        def adopt(chosen: MeasuredRound) -> None:
            m, loss, (pruned, built, plan, history) = chosen.measured, chosen.loss, chosen.payload
            profile = {name: {"format": "channels", "group": v["group"], "kept": v["kept"], "of": v["of"],
                              "sparsity": 1.0 - v["kept"] / v["of"]} for name, v in plan["widths"].items()}
            ctx.artifacts.update(executable=built, verified=m, calib_loss=loss, predicted_speedup=m["predicted_speedup"],
                                 profile=profile, pruned_model=pruned, channel_history=history,
                                 pruned={k: v["sparsity"] for k, v in profile.items() if v["kept"] < v["of"]})
            ctx.artifacts["channels"] = {"widths": {k: v["kept"] for k, v in profile.items()}, "history": history,
                                         "problem": problem.to_json(),
                                         "not_pruned": {g.name: g.reason for g in problem.groups
                                                        if g.id not in problem.decisions}}

        return run_rounds(ctx, attempt, adopt, what="structured artifact").payload[0]
