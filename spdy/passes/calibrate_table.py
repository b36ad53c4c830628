"""calibrate-table: after a round is measured, correct the latency table with the time each
layer's kernels took inside that round's artifact (algo/insitu_calibration.py says why), and
say what the corrected table predicts for the same profile.

The next round's solve then works from the layers' real costs instead of squeezing every
layer by one budget factor; the factor that is left (calibrated_predicted_speedup against the
measured one) only covers what the per-layer times do not see. A profile that does not explain
the end-to-end measurement (within `agreement`) is not used: on ResNet-50 one predicted 1.43x
for an artifact measured at 1.92x, and trusting it cost a round (1.44x).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from spdy.passes.algo.insitu_calibration import calibrate_rows, calibrate_rows_by_bytes, predicted_time, state_shift
from spdy.passes.base import Pass, PassResult
from spdy.passes.profile_latency import monotone_in_sparsity
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class CalibrateTablePass(Pass):
    name = "calibrate-table"
    requires = ("verified", "latency_table", "choice")
    provides = ("latency_table", "table_calibrations", "latency_table_uncalibrated")
    agreement: float = 0.15   # the in-place profile must explain the measured speedup this closely
    model: str = "bytes"      # "bytes": extra time per weight byte read; "ratio": one factor per row
    state_band: float = 1.25  # after a calibration, a median in-place/table ratio outside this: machine state

    def run(self, gm, ctx) -> PassResult:
        m = ctx.need("verified")
        in_place = m.get("in_place_ms")
        if not in_place:
            return PassResult(gm, False, {"calibrated": False, "why": "no in-place layer times (remote device)"})
        table, choice = ctx.need("latency_table"), ctx.need("choice")
        sparse, dense = in_place["artifact"], in_place["dense_artifact"]
        rows = {r: sparse[name] / 1e3 for r, name in enumerate(table.layers) if sparse.get(name, 0) > 0}
        # the artifact's clock in the table's: the table's dense column was timed in place in the
        # dense artifact, which was profiled again right next to this one
        dense_now = sum(dense.get(name, 0.0) for name in table.layers) / 1e3
        if dense_now <= 0:
            return PassResult(gm, False, {"calibrated": False, "why": "the dense artifact's layers were not found"})
        frame = float(table.times[:, 0].sum()) / dense_now if table.dense_timed == "in-place" \
            else table.base / (m["dense_artifact"]["median_ms"] / 1e3)  # no in-place column: end to end
        # what this round's table said each layer would take, next to what it took in place
        # (on the table's clock): the report shows where the prediction went wrong
        first = ctx.artifacts.setdefault("latency_table_uncalibrated", table.times)
        m["layers_table_vs_in_place"] = {
            name: {"option": table.options[choice[r]].key, "table_ms": round(float(table.times[r, choice[r]]) * 1e3, 4),
                   "uncalibrated_ms": round(float(first[r, choice[r]]) * 1e3, 4),
                   "in_place_ms": round(rows[r] * frame * 1e3, 4) if r in rows else None}
            for r, name in enumerate(table.layers)}
        shift = state_shift(table.times, table.options, choice, rows, frame) \
            if ctx.artifacts.get("table_calibrations", 0) else None
        if shift is not None and not 1 / self.state_band <= shift <= self.state_band:
            # the table already holds in-place times; when nearly every layer is off by the same
            # factor the machine changed speed (on the 2-vCPU VMs block-sparse kernels run 1.5x
            # slower for tens of seconds at a time, the dense ones barely), not the layers
            m["machine_state_shift"] = shift
            return PassResult(gm, False, {"calibrated": False, "frame": round(frame, 4), "state_shift": round(shift, 3),
                                          "why": f"the sparse layers took {shift:.2f}x their calibrated times in place: "
                                                 "the machine changed state since the last round; table left as it was"})
        if self.model == "bytes":
            layers = {l.qualname: l for l in ctx.need("layers")}
            shapes = [(layers[n].numel, layers[n].weight_shape[0]) for n in table.layers]
            times, ratios = calibrate_rows_by_bytes(table.times, table.options, choice, rows, shapes, frame)
            # a negative rate (in place faster than alone) takes more off denser options
            times = monotone_in_sparsity(times, table.options)
        else:
            times, ratios = calibrate_rows(table.times, table.options, choice, rows, frame)
        if not ratios:
            return PassResult(gm, False, {"calibrated": False, "why": "no sparse layer found in the artifact"})
        before = table.base / predicted_time(table.times, choice, table.fixed)
        after = table.base / predicted_time(times, choice, table.fixed)
        if abs(after / m["measured_speedup"] - 1) > self.agreement:
            # the in-place profile should explain the end-to-end measurement; when it does not,
            # one of them caught the machine in another state, and the table stays as it was
            return PassResult(gm, False, {"calibrated": False, "frame": round(frame, 4),
                                          "why": f"the in-place layer times predict {after:.2f}x for the artifact "
                                                 f"measured at {m['measured_speedup']:.2f}x end to end"})
        ctx.artifacts["latency_table"] = dataclasses.replace(table, times=times)
        ctx.artifacts["table_calibrations"] = ctx.artifacts.get("table_calibrations", 0) + 1
        m["calibrated_predicted_speedup"] = after
        # in-place / table at the option each measured layer ran, whatever the model
        seen = {r: float(times[r, choice[r]] / table.times[r, choice[r]]) for r in rows
                if table.options[choice[r]].format != "dense" and table.times[r, choice[r]] > 0}
        worst = sorted(seen.items(), key=lambda kv: -kv[1])[:5]
        return PassResult(gm, False, {
            "calibrated": True, "model": self.model, "frame": round(frame, 4),
            "predicted_speedup_before": round(before, 4),
            "calibrated_predicted_speedup": round(after, 4), "measured_speedup": round(m["measured_speedup"], 4),
            "median_ratio": round(float(np.median(list(seen.values()))), 4) if seen else None,
            "slowest_in_place": {table.layers[r]: round(v, 3) for r, v in worst}})
