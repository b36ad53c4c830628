import pytest

from spdy.passes.algo.budget_correction import NOISE, OVERSHOOT, judge_round


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
