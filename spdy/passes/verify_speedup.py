"""verify-speedup: measure the artifact against the dense artifact (and PyTorch eager, and
onnxruntime when installed), end to end.

The speedup spdy promises is the measured one: both artifacts run interleaved on the target
on the same input, and the ratio of medians is what the report calls the speedup.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.reference_runtimes import reference_fns, reference_summary
from spdy.runtime.interleaved import paired_speedup, paired_spread


def measure_round(ctx, rounds: int, min_time_s: float) -> dict:
    built, dense = ctx.need("executable"), ctx.need("dense_executable")
    threads = ctx.num_threads
    arrays = [t.contiguous().numpy() for t in ctx.inputs.flat]
    device = ctx.device
    # both artifacts interleaved on the device; PyTorch eager and onnxruntime join where they can run
    res = device.time_interleaved({"artifact": built, "dense_artifact": dense}, arrays,
                                  host_fns=lambda: reference_fns(ctx, threads), rounds=rounds, min_time_s=min_time_s)
    art, den = res["artifact"]["median_ms"], res["dense_artifact"]["median_ms"]
    dense_vs = reference_summary(res, den)
    speedup = paired_speedup(res, "dense_artifact", "artifact")
    spread = paired_spread(res, "dense_artifact", "artifact")
    return {"artifact": res["artifact"], "dense_artifact": res["dense_artifact"],
            "torch_eager": res.get("torch_eager"), "onnxruntime": res.get("onnxruntime"),
            "threads": threads, "measured_speedup": speedup,
            "measured_speedup_p10_p90": [round(v, 4) for v in spread] if spread else None, **reference_summary(res, art),
            "dense_vs_torch_eager": dense_vs["speedup_vs_torch_eager"],
            "dense_vs_onnxruntime": dense_vs["speedup_vs_onnxruntime"],
            "measured_on": device.spec}


def in_place_layers(ctx) -> dict | None:
    """{"artifact": {layer: ms}, "dense_artifact": {layer: ms}}: what each prunable layer's
    kernels took inside each artifact (plus "(other)"), profiled in alternating runs so both see
    the machine in the same state; None where the device cannot profile (a remote one: the
    instrument needs the VM in this process). calibrate-table reads it; the report keeps it so
    a user sees where the time went."""
    from spdy.runtime.call_profile import per_layer
    device = ctx.device
    try:
        calls = device.profile_calls({"artifact": ctx.need("executable"),
                                      "dense_artifact": ctx.need("dense_executable")})
    except Exception:  # noqa: BLE001 - the profile is an aid; the measured speedup stands without it
        return None
    if calls is None:
        return None
    names = [l.qualname for l in ctx.need("layers")]
    return {k: {n: round(v * 1e3, 4) for n, v in per_layer(c, names).items()} for k, c in calls.items()}


@register
@dataclass(frozen=True)
class VerifySpeedupPass(Pass):
    name = "verify-speedup"
    requires = ("executable", "dense_executable")
    provides = ("verified", "rounds", "baseline", "onnxruntime_session", "reference_notes")
    rounds: int = 7
    min_time_s: float = 0.05

    def run(self, gm, ctx) -> PassResult:
        m = measure_round(ctx, self.rounds, self.min_time_s)
        m["in_place_ms"] = in_place_layers(ctx)
        predicted = ctx.artifacts.get("predicted_speedup")
        m["predicted_speedup"] = predicted
        m["round"] = len(ctx.artifacts.setdefault("rounds", []))
        ctx.artifacts["rounds"].append(m)
        ctx.artifacts["verified"] = m
        ctx.artifacts["baseline"] = {"dense_artifact": m["dense_artifact"], "torch_eager": m["torch_eager"],
                                     "onnxruntime": m["onnxruntime"], "threads": m["threads"],
                                     "speedup_vs_torch_eager": m["dense_vs_torch_eager"],
                                     "speedup_vs_onnxruntime": m["dense_vs_onnxruntime"],
                                     "measured_on": m["measured_on"]}
        return PassResult(gm, False, {"artifact_ms": round(m["artifact"]["median_ms"], 3),
                                      "dense_ms": round(m["dense_artifact"]["median_ms"], 3),
                                      "measured_speedup": round(m["measured_speedup"], 3)})
