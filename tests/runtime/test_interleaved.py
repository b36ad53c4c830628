"""Interleaved rounds and paired ratios (spdy.runtime.interleaved)."""
import pytest

from spdy.runtime.interleaved import interleaved, paired_speedup, paired_spread


def test_paired_ratio_cancels_slow_stretches_that_medians_do_not():
    # rounds 0-3 on a slow machine (everything 2.5x), rounds 4-6 fast; the sparse artifact is
    # really 2x faster. The ratio of medians mixes a slow dense median with a fast sparse one.
    dense = [25.0, 25.0, 25.0, 25.0, 10.0, 10.0, 10.0]
    art = [12.5, 12.5, 12.5, 5.0, 5.0, 5.0, 5.0]   # round 3: the machine sped up between the two
    res = {"dense": {"median_ms": 25.0, "samples_ms": dense}, "art": {"median_ms": 5.0, "samples_ms": art}}
    assert res["dense"]["median_ms"] / res["art"]["median_ms"] == 5.0
    assert paired_speedup(res, "dense", "art") == pytest.approx(2.0)


def test_interleaved_keeps_the_samples_for_pairing():
    res = interleaved({"a": lambda: sum(range(2000)), "b": lambda: sum(range(100))}, rounds=3, min_time_s=0.002)
    assert len(res["a"]["samples_ms"]) == len(res["b"]["samples_ms"]) == 3
    assert paired_speedup(res, "a", "b") > 1.0
    # without samples (an older report) it falls back to the ratio of medians
    assert paired_speedup({"a": {"median_ms": 4.0}, "b": {"median_ms": 2.0}}, "a", "b") == 2.0


def test_spread_of_the_paired_ratios():
    res = {"d": {"samples_ms": [2.0, 2.0, 4.0, 2.0]}, "a": {"samples_ms": [1.0, 1.0, 1.0, 2.0]}}
    lo, hi = paired_spread(res, "d", "a")
    assert lo == pytest.approx(1.3) and hi == pytest.approx(3.4)
    assert paired_spread({"d": {}, "a": {}}, "d", "a") is None
