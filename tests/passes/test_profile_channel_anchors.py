"""Round calibration of the in-place channel timer: points added on the dense artifact's
clock, and a profile that does not explain the measurement left out."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from spdy.passes.algo.channel_latency import InPlaceChannelTimes
from spdy.passes.algo.channel_widths import LayerDims
from spdy.passes.profile_channel_anchors import calibrate_round, uniform_widths


def _problem():
    # two convs: a (3 -> group 0) and b (group 0 -> 10); group 0 has 8 channels
    dims = {"a": LayerDims("a", 3, 8, out_groups=[(0, 1)]), "b": LayerDims("b", 8, 10, in_groups=[(0, 1)])}
    timer = InPlaceChannelTimes({q: (d.in_full, d.out_full, False) for q, d in dims.items()})
    timer.add("a", 3, 8, 0.004)
    timer.add("b", 8, 10, 0.006)
    return SimpleNamespace(timer=timer, dims=dims, sizes={0: 8}, base=0.012, fixed=0.002,
                           grid={0: [8, 6, 4, 2]}, decisions=[0])


def _round(measured, art_a, art_b, dense_scale=1.0):
    return {"measured_speedup": measured,
            "in_place_ms": {"artifact": {"a": art_a, "b": art_b, "(other)": 0.5},
                            "dense_artifact": {"a": 4.0 * dense_scale, "b": 6.0 * dense_scale}}}


def test_round_points_join_the_timer_on_the_dense_clock():
    p = _problem()
    # the machine runs 2x slower now: dense rows read 8 + 12 ms; the artifact's rows 2 + 4 ms
    # are 1 + 2 ms on the timer's clock, so the artifact is predicted at 2 + 3 = 5 ms -> 2.4x
    m = _round(2.4, 2.0, 4.0, dense_scale=2.0)
    stats = calibrate_round(p, m, {0: 4})
    assert stats["calibrated"] and stats["frame"] == pytest.approx(0.5)
    assert p.timer("a", 3, 4) == pytest.approx(0.001) and p.timer("b", 4, 10) == pytest.approx(0.002)
    assert m["calibrated_predicted_speedup"] == pytest.approx(0.012 / 0.005)
    # before: proportional guesses 2 + 3 ms + 2 fixed = 7 ms
    assert stats["predicted_speedup_before"] == pytest.approx(0.012 / 0.007, rel=1e-3)


def test_a_profile_that_does_not_explain_the_measurement_is_not_used():
    p = _problem()
    m = _round(1.2, 2.0, 4.0, dense_scale=2.0)   # the profile says 2.4x, the artifact measured 1.2x
    stats = calibrate_round(p, m, {0: 4})
    assert not stats["calibrated"] and "1.20x" in stats["why"]
    assert "calibrated_predicted_speedup" not in m
    assert p.timer.stats["points"] == 2


def test_no_profile_or_stand_alone_timer_is_said():
    p = _problem()
    assert "remote" in calibrate_round(p, {"measured_speedup": 2.0, "in_place_ms": None}, {0: 4})["why"]
    p.timer = lambda q, ci, co: 0.001
    assert "alone" in calibrate_round(p, _round(2.0, 1, 1), {0: 4})["why"]


def test_uniform_widths_pick_the_nearest_grid_width():
    p = _problem()
    assert uniform_widths(p, 0.7) == {0: 6}
    assert uniform_widths(p, 0.4) == {0: 4}
