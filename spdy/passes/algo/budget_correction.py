"""What one measured round of a compile means for the next (DESIGN 4.6), for the sparse and
the structured (channels) compile loops alike.

A measured speedup within NOISE below the target meets it. Short of it, the budget shrinks by
measured/predicted (or measured/target if smaller) with a little margin. More than OVERSHOOT
above it, the budget loosens by the square root of the overshoot, so the next profile prunes
less and keeps more accuracy.

One measurement is not trusted blindly (`remeasure_reason`, `pooled_measurement`): on the
shared 2-vCPU machines block-sparse kernels run ~1.5x slower for stretches of seconds, and a
residual MNIST CNN at 2x measured 1.23x against a prediction of 2.02x in such a stretch; the
budget shrank by that, the next round was infeasible, and 2x was called impossible while 3x
met minutes later. So before a round moves the budget, verify-speedup measures again when
  - the round lands more than FAR from its prediction, until two measurements agree, or
  - the p10..p90 interval of the paired speedup straddles the target's noise line (the round is
    close to the target and the interval, not the median alone, must say on which side it is),
at most MAX_MEASUREMENTS in all; the round is then judged by the median of all measurements'
paired ratios pooled, so one slow stretch is outvoted by the measurements around it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE = 0.03      # measured speedups within 3% of the target count as meeting it
OVERSHOOT = 0.15  # more than 15% faster than asked: re-solve with a looser budget to keep accuracy
FAR = 0.15        # a median this far (relative) from the prediction is measured again before it is believed
AGREE = 2 * NOISE # two measurements whose medians are this close (relative) confirm each other
MAX_MEASUREMENTS = 3


@dataclass(frozen=True)
class RoundOutcome:
    meets: bool          # this round's artifact meets the target
    stop: bool           # it meets it without wasting accuracy: no further round
    budget_factor: float # multiply the budget scale by this before the next round


def judge_round(measured: float, predicted: float | None, target: float) -> RoundOutcome:
    ratio = measured / target
    meets = ratio >= 1 - NOISE
    if meets and ratio <= 1 + OVERSHOOT:
        return RoundOutcome(True, True, 1.0)
    if not meets:
        short = min(ratio, measured / (predicted or target))
        return RoundOutcome(False, False, short / (1 + NOISE / 3))
    return RoundOutcome(True, False, ratio ** 0.5)


def paired_ratios(m: dict) -> list[float]:
    """Per-block dense/artifact ratios of one verify-speedup record (empty when the samples are
    not kept: an older report)."""
    a, b = (m.get("dense_artifact") or {}).get("samples_ms"), (m.get("artifact") or {}).get("samples_ms")
    if not a or not b or len(a) != len(b):
        return []
    return [x / y for x, y in zip(a, b)]


def speedup_interval(m: dict) -> tuple[float, float, float]:
    """(p10, median, p90) of a record's paired speedup; (median,)*3 without samples."""
    r = m.get("paired_ratios") or paired_ratios(m)
    if not r:
        s = m["measured_speedup"]
        return s, s, s
    return float(np.percentile(r, 10)), float(np.median(r)), float(np.percentile(r, 90))


def remeasure_reason(measurements: list[dict], predicted: float | None, target: float | None) -> str | None:
    """Why the round's artifact must be measured again before the budget moves, or None.

    `measurements` are verify-speedup records of the same pair of artifacts, oldest first.
    Far from the prediction: measure again unless the last two measurements agree (then the
    table was wrong, not the machine). Interval straddling target*(1-NOISE): measure again
    to narrow it. Never more than MAX_MEASUREMENTS.
    """
    if len(measurements) >= MAX_MEASUREMENTS:
        return None
    p10, med, p90 = speedup_interval(pooled_measurement(measurements))
    if predicted and abs(med / predicted - 1) > FAR:
        last = [speedup_interval(m)[1] for m in measurements[-2:]]
        if len(last) < 2 or abs(last[0] / last[1] - 1) > AGREE:
            return f"measured {med:.2f}x, far from the predicted {predicted:.2f}x"
    if target and p10 < target * (1 - NOISE) <= p90:
        return f"the p10..p90 interval {p10:.2f}..{p90:.2f}x straddles the target {target:.2f}x"
    return None


def pooled_measurement(measurements: list[dict]) -> dict:
    """One record for several measurements of the same artifacts: the last record's fields
    with the paired ratios of all of them pooled (their median is measured_speedup, p10/p90
    the interval) and each measurement's (p10, median, p90) kept under "measurements"."""
    if len(measurements) == 1:
        return measurements[0]
    pooled = [r for m in measurements for r in (m.get("paired_ratios") or paired_ratios(m))]
    out = dict(measurements[-1])
    out["measurements"] = [[round(v, 4) for v in speedup_interval(m)] for m in measurements]
    if pooled:
        out["paired_ratios"] = pooled
        out["measured_speedup"] = float(np.median(pooled))
        out["measured_speedup_p10_p90"] = [round(float(np.percentile(pooled, q)), 4) for q in (10, 90)]
    return out


def residual_scale(measured: float, calibrated_predicted: float, meets: bool) -> float:
    """The budget scale for the next round once the table was corrected with this round's
    in-place layer times (passes/calibrate_table.py): the corrected table already predicts
    this artifact, so the scale starts again from 1 and keeps only what the correction did not
    explain (measured against the corrected prediction), plus the noise margin after a miss.
    Multiplying it into the earlier scales would count the same slowness twice.
    After a miss the scale never loosens: on ResNet-50 round 0 missed 2x (1.92x) while its
    in-place profile read slower still (1.43x), the residual 1.34 loosened the budget, and
    round 1 fell to 1.44x.
    """
    residual = measured / calibrated_predicted
    return residual if meets else min(residual, 1.0) / (1 + NOISE / 3)


@dataclass(frozen=True)
class MeasuredRound:
    measured: dict       # verify-speedup's record: measured_speedup, predicted_speedup, latencies
    loss: float          # calibration loss of this round's model (lower is better)
    payload: tuple       # whatever the caller needs to adopt this round (artifact, profile, ...)


def correction_rounds(attempt, target: float, rounds: int) -> tuple[MeasuredRound, bool]:
    """Run `attempt(budget_scale) -> MeasuredRound` up to `rounds` times, correcting the budget
    scale between rounds by `judge_round`. Returns (chosen round, whether it meets the target).

    Of the rounds that meet the target the least loss wins (a round far above the target
    also meets it, but prunes more than needed); if none meets it, the fastest round is
    returned. An attempt raising InfeasibleSpeedupError ends the loop; it propagates only
    when no round was measured at all (the table itself says the target is out of reach).
    """
    from spdy.errors import InfeasibleSpeedupError
    scale, meeting, fastest = 1.0, [], None
    for _ in range(max(1, rounds)):
        try:
            r = attempt(scale)
        except InfeasibleSpeedupError:
            if fastest is None:
                raise
            break  # the corrected budget is out of reach: the measured rounds are what this CPU gives
        m = r.measured
        if fastest is None or m["measured_speedup"] > fastest.measured["measured_speedup"]:
            fastest = r
        outcome = judge_round(m["measured_speedup"], m.get("predicted_speedup"), target)
        if outcome.meets:
            meeting.append(r)
        if outcome.stop:
            break
        calibrated = m.get("calibrated_predicted_speedup")
        scale = residual_scale(m["measured_speedup"], calibrated, outcome.meets) if calibrated \
            else scale * outcome.budget_factor
    if meeting:
        return min(meeting, key=lambda r: r.loss), True
    return fastest, False
