"""What one measured round of a compile means for the next (DESIGN 4.6), for the sparse and
the structured (channels) compile loops alike.

A measured speedup within NOISE below the target meets it. Short of it, the budget shrinks by
measured/predicted (or measured/target if smaller) with a little margin. More than OVERSHOOT
above it, the budget loosens by the square root of the overshoot, so the next profile prunes
less and keeps more accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass

NOISE = 0.03      # measured speedups within 3% of the target count as meeting it
OVERSHOOT = 0.15  # more than 15% faster than asked: re-solve with a looser budget to keep accuracy


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
