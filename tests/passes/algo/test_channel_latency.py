"""The in-place channel timer: exact points, interpolation in the share of work, its bounds."""
from __future__ import annotations

import math

import pytest

from spdy.passes.algo.channel_latency import InPlaceChannelTimes, interpolate


def _timer():
    t = InPlaceChannelTimes({"conv": (64, 128, False), "dw": (32, 32, True)})
    t.add("conv", 64, 128, 1.0)
    return t


def test_exact_point_is_returned_as_measured():
    t = _timer()
    t.add("conv", 32, 64, 0.4)
    assert t("conv", 32, 64) == 0.4 and t("conv", 64, 128) == 1.0
    assert t.stats["exact"] == 2 and t.stats["points"] == 2


def test_single_point_is_proportional_to_the_work():
    t = _timer()
    assert t("conv", 32, 128) == pytest.approx(0.5)
    assert t("conv", 32, 64) == pytest.approx(0.25)


def test_interpolates_linearly_in_share_between_points():
    t = _timer()
    t.add("conv", 32, 64, 0.4)            # share 0.25
    # share of (64, 64) is 0.5: a third of the way from 0.25 to 1.0
    assert t("conv", 64, 64) == pytest.approx(0.4 + (0.5 - 0.25) / 0.75 * 0.6)
    assert t.stats["interpolated"] == 1


def test_below_the_narrowest_point_stays_between_proportional_and_that_point():
    pts = [(0.25, 0.4), (1.0, 1.0)]
    # the line through the two points would give 0.4 - 0.2 * 0.8 = 0.24 at share 0.05; the
    # proportional floor is 0.4 * 0.05 / 0.25 = 0.08; the line lies between
    assert interpolate(pts, 0.05) == pytest.approx(0.4 - 0.2 * 0.6 / 0.75)
    # a line falling steeper than the work is floored at the proportional time
    steep = [(0.5, 0.1), (1.0, 1.0)]
    assert interpolate(steep, 0.25) == pytest.approx(0.05)
    # a line that would rise as the layer narrows is capped at the narrowest point's time
    flat = [(0.5, 0.9), (1.0, 0.5)]
    assert interpolate(flat, 0.1) == pytest.approx(0.9)


def test_depthwise_share_follows_the_channels():
    t = _timer()
    t.add("dw", 32, 32, 0.2)
    assert t.share("dw", 16, 16) == 0.5
    assert t("dw", 16, 16) == pytest.approx(0.1)


def test_equal_shares_are_averaged_and_later_points_replace():
    t = _timer()
    t.add("conv", 32, 128, 0.6)
    t.add("conv", 64, 64, 0.4)            # same share 0.5 as (32, 128)
    # share 0.5 is averaged to 0.5 s; (48, 128) has share 0.75: halfway to the full 1.0 s
    assert t("conv", 48, 128) == pytest.approx(0.75)
    t.add("conv", 32, 128, 0.8)
    assert t("conv", 32, 128) == 0.8


def test_bad_points_are_ignored_and_unknown_layers_named():
    t = _timer()
    assert not t.add("conv", 32, 64, 0.0)
    assert not t.add("conv", 32, 64, math.nan)
    assert not t.add("nope", 1, 1, 1.0)
    assert t.missing() == ["dw"]
    with pytest.raises(KeyError, match="dw"):
        t("dw", 16, 16)
