"""profile-channel-anchors: time narrower widths of every layer inside real artifacts.

profile-channels gives each layer's full-width time in the dense artifact. Narrower widths
would otherwise be guessed in proportion to the work, and a narrow conv does not run in
proportion: its GEMM has fewer rows to vectorize over and a larger share of fixed costs. So
for each anchor ratio the model is narrowed uniformly (every decision group at the grid width
nearest ratio x channels; which channels are kept does not change the time), built with the
ordinary dense lowering, and profiled in alternating runs with the dense artifact; each
layer's in-place time becomes a point of the in-place timer (algo/channel_latency.py), on the
dense artifact's clock (the dense rows as profile-channels saw them, over the dense rows now).

`calibrate_round` does the same with each measured round's artifact, so the solve of the next
round prices the widths it already tried at what they took.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.passes.algo.channel_latency import InPlaceChannelTimes
from spdy.passes.algo.channel_solve import total_time
from spdy.passes.algo.surgery import apply_history, history_from_keep
from spdy.passes.base import Pass, PassResult
from spdy.passes.child_build import build_model_artifact
from spdy.passes.registry import register


def _frame(timer: InPlaceChannelTimes, dims, dense_now: dict[str, float]) -> float | None:
    """Factor from this profile's clock to the timer's: the dense rows as the timer has them
    over the same rows profiled now (None if the dense artifact's rows were not found)."""
    names = [q for q in dims if dense_now.get(q, 0.0) > 0]
    now = sum(dense_now[q] for q in names)
    if not names or now <= 0:
        return None
    return sum(timer(q, dims[q].in_full, dims[q].out_full) for q in names) / now


def add_points(timer: InPlaceChannelTimes, dims, sizes, widths: dict[int, int], rows: dict[str, float],
               frame: float) -> int:
    """Add each layer's in-place time (seconds, this profile's clock) at its (in, out) under
    `widths`; returns how many were added."""
    n = 0
    for q, d in dims.items():
        if rows.get(q, 0.0) > 0:
            n += timer.add(q, *d.dims(sizes, widths), rows[q] * frame)
    return n


def profile_pair(device, artifact, dense, names) -> tuple[dict[str, float], dict[str, float]] | None:
    """Per-layer seconds inside a built artifact and the dense artifact, profiled alternately
    on the device; None where the device cannot profile in place."""
    from spdy.runtime.call_profile import per_layer
    calls = device.profile_calls({"artifact": artifact, "dense": dense})
    if calls is None:
        return None
    return per_layer(calls["artifact"], names), per_layer(calls["dense"], names)


def calibrate_round(problem, m: dict, widths: dict[int, int], agreement: float = 0.15) -> dict:
    """After a round was measured: add its layers' in-place times (verify-speedup's
    `in_place_ms`) to the timer and return what the timer now predicts for the same widths.

    As in calibrate-table, a profile that does not explain the end-to-end measurement within
    `agreement` is not used (one of the two caught the machine in another state). Returns
    stats; "calibrated_predicted_speedup" is set in them (and in `m`) only when used."""
    timer = problem.timer
    in_place = m.get("in_place_ms")
    if not isinstance(timer, InPlaceChannelTimes):
        return {"calibrated": False, "why": "layer times were measured alone, not in place"}
    if not in_place:
        return {"calibrated": False, "why": "no in-place layer times (remote device)"}
    art = {q: v / 1e3 for q, v in in_place["artifact"].items()}
    frame = _frame(timer, problem.dims, {q: v / 1e3 for q, v in in_place["dense_artifact"].items()})
    if frame is None:
        return {"calibrated": False, "why": "the dense artifact's layers were not found"}
    explained = problem.base / (problem.fixed + frame * sum(art.get(q, 0.0) for q in problem.dims))
    if abs(explained / m["measured_speedup"] - 1) > agreement:
        return {"calibrated": False, "frame": round(frame, 4),
                "why": f"the in-place layer times predict {explained:.2f}x for the artifact measured at "
                       f"{m['measured_speedup']:.2f}x end to end"}
    before = problem.base / total_time(problem.dims, problem.sizes, {**problem.sizes, **widths}, timer, problem.fixed)
    added = add_points(timer, problem.dims, problem.sizes, widths, art, frame)
    after = problem.base / total_time(problem.dims, problem.sizes, {**problem.sizes, **widths}, timer, problem.fixed)
    m["calibrated_predicted_speedup"] = after
    return {"calibrated": True, "frame": round(frame, 4), "points_added": added,
            "predicted_speedup_before": round(before, 4), "calibrated_predicted_speedup": round(after, 4)}


def uniform_widths(problem, ratio: float) -> dict[int, int]:
    """Every decision group at its grid width nearest ratio x channels."""
    return {g: min(problem.grid[g], key=lambda w: (abs(w - ratio * problem.sizes[g]), -w)) for g in problem.decisions}


@register
@dataclass(frozen=True)
class ProfileChannelAnchorsPass(Pass):
    name = "profile-channel-anchors"
    requires = ("channel_problem", "dense_executable")
    provides = ()
    ratios: tuple = (0.7, 0.4)
    tune: bool = True

    def run(self, gm, ctx) -> PassResult:
        problem = ctx.need("channel_problem")
        timer = problem.timer
        if not isinstance(timer, InPlaceChannelTimes):
            return PassResult(gm, False, {"anchors": 0, "why": "layer times are measured alone (remote device)"})
        dense = ctx.need("dense_executable")
        names = list(problem.dims)
        anchors = []
        for ratio in self.ratios:
            widths = uniform_widths(problem, float(ratio))
            keep = {g: list(range(w)) for g, w in widths.items() if w < problem.sizes[g]}
            if not keep:
                continue
            narrow = apply_history(ctx.model, history_from_keep(ctx.model, problem.groups, keep)).eval()
            child = build_model_artifact(ctx, narrow, self.tune)
            pair = profile_pair(ctx.device, child.artifacts["executable"], dense, names)
            if pair is None:
                continue
            rows, dense_rows = pair
            frame = _frame(timer, problem.dims, dense_rows)
            if frame is None:
                continue
            guessed = total_time(problem.dims, problem.sizes, {**problem.sizes, **widths}, timer, problem.fixed)
            added = add_points(timer, problem.dims, problem.sizes, widths, rows, frame)
            in_place = problem.fixed + frame * sum(rows.get(q, 0.0) for q in names)
            anchors.append({"ratio": ratio, "points": added, "frame": round(frame, 4),
                            "in_place_ms": round(in_place * 1e3, 4),
                            "predicted_before_ms": round(guessed * 1e3, 4)})
        return PassResult(gm, False, {"anchors": anchors, "points": timer.stats["points"]})
