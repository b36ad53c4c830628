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
