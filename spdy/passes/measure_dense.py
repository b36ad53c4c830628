"""measure-dense: latency of the dense artifact, PyTorch eager and (when installed) onnxruntime on
the same input.

These are the baseline rows of cm.report; speedups of sparse compiles are measured against
the dense artifact, and the eager ratio tells the user what spdy buys over plain PyTorch.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.reference_runtimes import reference_fns, reference_summary


@register
@dataclass(frozen=True)
class MeasureDensePass(Pass):
    name = "measure-dense"
    requires = ("executable",)
    provides = ("baseline", "onnxruntime_session", "reference_notes")
    rounds: int = 5
    min_time_s: float = 0.05

    def run(self, gm, ctx) -> PassResult:
        built = ctx.need("executable")
        threads = ctx.num_threads
        arrays = [t.contiguous().numpy() for t in ctx.inputs.flat]
        device = ctx.device
        # PyTorch eager and onnxruntime join the rounds where they run (this CPU, not a remote device)
        res = device.time_interleaved({"artifact": built}, arrays, host_fns=lambda: reference_fns(ctx, threads),
                                      rounds=self.rounds, min_time_s=self.min_time_s)
        baseline = {"dense_artifact": res["artifact"], "torch_eager": res.get("torch_eager"),
                    "onnxruntime": res.get("onnxruntime"), "threads": threads,
                    **reference_summary(res, res["artifact"]["median_ms"]),
                    "measured_on": device.spec}
        ctx.artifacts["baseline"] = baseline
        ms = {k: round(res[k]["median_ms"], 3) if res.get(k) else None for k in ("torch_eager", "onnxruntime")}
        return PassResult(gm, False, {"artifact_ms": round(res["artifact"]["median_ms"], 3),
                                      "torch_eager_ms": ms["torch_eager"], "onnxruntime_ms": ms["onnxruntime"]})
