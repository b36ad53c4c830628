import pytest

from spdy.errors import InfeasibleSpeedupError
from spdy.passes.algo.budget_correction import NOISE, OVERSHOOT, MeasuredRound, correction_rounds, judge_round


def test_within_noise_meets_and_stops():
    o = judge_round(2.0 * (1 - NOISE), 2.0, 2.0)
    assert o.meets and o.stop and o.budget_factor == 1.0


def test_short_round_shrinks_by_measured_over_predicted_when_that_is_smaller():
    o = judge_round(1.5, 2.5, 2.0)          # measured/predicted 0.6 < measured/target 0.75
    assert not o.meets and not o.stop
    assert o.budget_factor == pytest.approx(0.6 / (1 + NOISE / 3))
    o = judge_round(1.5, 1.6, 2.0)          # measured/target 0.75 is the smaller
    assert o.budget_factor == pytest.approx(0.75 / (1 + NOISE / 3))


def test_overshoot_meets_but_loosens_by_the_square_root():
    r = 1 + 2 * OVERSHOOT
    o = judge_round(2.0 * r, 2.0, 2.0)
    assert o.meets and not o.stop and o.budget_factor == pytest.approx(r ** 0.5)


def _fake(measured_by_round, losses=None, infeasible_from=None):
    scales = []

    def attempt(scale):
        i = len(scales)
        scales.append(scale)
        if infeasible_from is not None and i >= infeasible_from:
            raise InfeasibleSpeedupError(2.0, 1.0, "budget out of reach")
        m = {"measured_speedup": measured_by_round[i], "predicted_speedup": 2.0}
        return MeasuredRound(m, (losses or [0.0] * 9)[i], (i,))
    return attempt, scales


def test_rounds_tighten_until_met_and_stop():
    attempt, scales = _fake([1.5, 2.02, 9.0])
    chosen, met = correction_rounds(attempt, 2.0, rounds=3)
    assert met and chosen.payload == (1,) and len(scales) == 2
    assert scales[1] == pytest.approx(0.75 / (1 + NOISE / 3))


def test_least_loss_of_the_meeting_rounds_wins():
    # round 0 overshoots (meets, loosened), round 1 meets with less loss, round 2 falls short
    attempt, scales = _fake([3.0, 2.5, 1.8], losses=[5.0, 1.0, 0.1])
    chosen, met = correction_rounds(attempt, 2.0, rounds=3)
    assert met and chosen.payload == (1,) and scales[1] > 1.0


def test_none_met_returns_fastest_and_infeasible_only_before_any_round():
    attempt, _ = _fake([1.2, 1.6, 1.4])
    chosen, met = correction_rounds(attempt, 2.0, rounds=3)
    assert not met and chosen.payload == (1,)
    attempt, scales = _fake([1.2], infeasible_from=1)
    chosen, met = correction_rounds(attempt, 2.0, rounds=3)
    assert not met and chosen.payload == (0,) and len(scales) == 2
    attempt, _ = _fake([], infeasible_from=0)
    with pytest.raises(InfeasibleSpeedupError):
        correction_rounds(attempt, 2.0, rounds=3)


def test_a_calibrated_round_restarts_the_scale_from_its_residual():
    from spdy.passes.algo.budget_correction import residual_scale
    scales = []

    def attempt(scale):
        scales.append(scale)
        i = len(scales) - 1
        # round 0 predicted 2.5 and measured 1.6; the table corrected with the in-place layer
        # times predicts 1.7 for the same profile: only 1.6/1.7 is left unexplained
        m = [{"measured_speedup": 1.6, "predicted_speedup": 2.5, "calibrated_predicted_speedup": 1.7},
             {"measured_speedup": 2.01, "predicted_speedup": 2.05}][i]
        return MeasuredRound(m, 0.0, (i,))
    chosen, met = correction_rounds(attempt, 2.0, 3)
    assert met and chosen.payload == (1,)
    assert scales[1] == pytest.approx(residual_scale(1.6, 1.7, False)) == pytest.approx(1.6 / 1.7 / (1 + NOISE / 3))
    assert residual_scale(2.6, 2.5, True) == pytest.approx(2.6 / 2.5)  # met: no margin
    assert residual_scale(1.9, 1.4, False) == pytest.approx(1 / (1 + NOISE / 3))  # a miss never loosens
