"""measure-dense: latency of the dense artifact and of PyTorch eager on the same input.

These are the baseline rows of cm.report; speedups of sparse compiles are measured against
the dense artifact, and the eager ratio tells the user what spdy buys over plain PyTorch.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.measure import artifact_fn, interleaved, interleaved_on_device, torch_eager_fn
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class MeasureDensePass(Pass):
    name = "measure-dense"
    requires = ("executable",)
    provides = ("baseline",)
    rounds: int = 5
    min_time_s: float = 0.05

    def run(self, gm, ctx) -> PassResult:
        built = ctx.need("executable")
        threads = ctx.options.get("num_threads", 1)
        arrays = [t.contiguous().numpy() for t in ctx.inputs.flat]
        device = ctx.artifacts.get("device")
        if device is not None and device.remote:
            # the artifact on the measuring device; PyTorch eager cannot run there
            res = interleaved_on_device(device, {"artifact": built.executable}, arrays, rounds=self.rounds,
                                        min_time_s=self.min_time_s)
            res["torch_eager"] = None
        else:
            fns = {"artifact": artifact_fn(built.runner, arrays),
                   "torch_eager": torch_eager_fn(ctx.model.eval(), ctx.inputs.args, ctx.inputs.kwargs, threads)}
            res = interleaved(fns, rounds=self.rounds, min_time_s=self.min_time_s)
        eager = res["torch_eager"]["median_ms"] if res["torch_eager"] else None
        baseline = {"dense_artifact": res["artifact"], "torch_eager": res["torch_eager"], "threads": threads,
                    "speedup_vs_torch_eager": eager / res["artifact"]["median_ms"] if eager else None,
                    "measured_on": device.spec if device is not None else "local"}
        ctx.artifacts["baseline"] = baseline
        return PassResult(gm, False, {"artifact_ms": round(res["artifact"]["median_ms"], 3),
                                      "torch_eager_ms": round(eager, 3) if eager else None})
