"""The correction loop every searching strategy shares (DESIGN 4.6).

A strategy supplies `attempt(ctx) -> MeasuredRound`: search under ctx.artifacts
["budget_scale"], build, measure. The loop is spdy.passes.algo.budget_correction's: a
measured speedup short of the target beyond noise tightens the budget, one far above it
loosens the budget (the extra pruning costs accuracy); of the rounds that meet the target
the least calibration loss wins. The strategy adopts the chosen round (`adopt`); if no round
met the target, InfeasibleSpeedupError names the best measured speedup.
"""
from __future__ import annotations

from typing import Callable

from spdy.errors import InfeasibleSpeedupError
from spdy.passes.algo.budget_correction import MeasuredRound, correction_rounds


def run_rounds(ctx, attempt: Callable[[object], MeasuredRound], adopt: Callable[[MeasuredRound], None], *,
               what: str = "artifact") -> MeasuredRound:
    """Up to ctx.options.rounds measured rounds; returns the adopted one."""
    speedup = ctx.options.speedup

    def scaled(scale: float) -> MeasuredRound:
        ctx.artifacts["budget_scale"] = scale
        return attempt(ctx)

    chosen, met = correction_rounds(scaled, speedup, ctx.options.rounds)
    adopt(chosen)
    if not met:
        best = chosen.measured["measured_speedup"]
        at = chosen.measured.get("judged_at_batch")
        what = f"{what} (at its slowest size, batch {at})" if at is not None else what
        raise InfeasibleSpeedupError(speedup, best, f"the best {what} measured {best:.2f}x after "
                                                    f"{len(ctx.artifacts['rounds'])} round(s) of budget correction")
    return chosen
