"""verify-speedup: measure the artifact against the dense artifact (and PyTorch eager, and
onnxruntime when installed), end to end.

The speedup spdy promises is the measured one: both artifacts run in alternating blocks on the
target on the same input; the median of the per-block ratios is what the report calls the
speedup, with its p10 and p90 next to it. In a compile's correction rounds a measurement far
from the prediction, or whose interval straddles the target, is measured again and pooled
before the budget moves (algo/budget_correction.py says why).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from spdy.passes.algo.budget_correction import pooled_measurement, remeasure_reason, speedup_interval

from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.reference_runtimes import reference_fns, reference_summary
from spdy.runtime.interleaved import paired_speedup, paired_spread

SETTLE_S = 1.0  # pause before measuring a round again: a slow stretch of the machine lasts seconds


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

    def measure(self, ctx, predicted: float | None) -> dict:
        """One measurement, then more while remeasure_reason asks for them (only in a searched
        compile's rounds, where a prediction and a target exist); the pooled record."""
        measurements = [measure_round(ctx, self.rounds, self.min_time_s)]
        target = ctx.options.speedup
        searched = predicted is not None and target > 1.0
        reasons = []
        while searched and (why := remeasure_reason(measurements, predicted, target)) is not None:
            reasons.append(why)
            time.sleep(SETTLE_S)
            # twice the blocks: the measurement again spans more of the machine's states
            measurements.append(measure_round(ctx, 2 * self.rounds, self.min_time_s))
        m = pooled_measurement(measurements)
        if reasons:
            m["remeasured_because"] = reasons
        return m

    def run(self, gm, ctx) -> PassResult:
        predicted = ctx.artifacts.get("predicted_speedup")
        m = self.measure(ctx, predicted)
        p10, median, p90 = speedup_interval(m)
        m["measured_speedup_p10_median_p90"] = [round(p10, 4), round(median, 4), round(p90, 4)]
        m["in_place_ms"] = in_place_layers(ctx)
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
                                      "measured_speedup": round(m["measured_speedup"], 3),
                                      "p10_p90": [round(p10, 3), round(p90, 3)],
                                      "measurements": len(m.get("measurements") or [m])})
