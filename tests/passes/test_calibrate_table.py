from types import SimpleNamespace

import numpy as np
import pytest

from spdy.passes.algo.grid import options, sparsity_levels
from spdy.passes.calibrate_table import CalibrateTablePass
from spdy.passes.context import CompileContext
from spdy.passes.profile_latency import LatencyTable

OPTS = options(("bsr16x1",), sparsity_levels(3))  # dense + 3 levels


def _ctx(sparse_ms, measured):
    times = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]]) / 1e3
    table = LatencyTable(["a", "b"], OPTS, times, base=10e-3, fixed=2e-3, dense_timed="in-place")
    verified = {"measured_speedup": measured, "dense_artifact": {"median_ms": 10.0},
                "in_place_ms": {"artifact": {"a": sparse_ms[0], "b": sparse_ms[1], "(other)": 2.0},
                                "dense_artifact": {"a": 4.0, "b": 4.0, "(other)": 2.0}}}
    return CompileContext(model=None, inputs=None, target=None,
                          artifacts={"latency_table": table, "verified": verified, "choice": [2, 2],
                                     "layers": [SimpleNamespace(qualname=n, numel=64 * 64, weight_shape=(64, 64))
                                                for n in ("a", "b")]})


def test_a_profile_that_explains_the_measurement_corrects_the_table():
    # both layers ran at the 2 ms option and took 3 ms in place: 10 / (2 + 3 + 3) = 1.25x
    ctx = _ctx((3.0, 3.0), measured=1.25)
    res = CalibrateTablePass(model="ratio").run(None, ctx)
    assert res.stats["calibrated"] and res.stats["calibrated_predicted_speedup"] == pytest.approx(1.25)
    assert res.stats["median_ratio"] == pytest.approx(1.5)
    np.testing.assert_allclose(ctx.artifacts["latency_table"].times[:, 1:] * 1e3, [[4.5, 3.0, 1.5]] * 2)
    assert ctx.artifacts["verified"]["calibrated_predicted_speedup"] == pytest.approx(1.25)
    rows = ctx.artifacts["verified"]["layers_table_vs_in_place"]   # the report says where the table was wrong
    assert rows["a"]["table_ms"] == pytest.approx(2.0) and rows["a"]["in_place_ms"] == pytest.approx(3.0)


def test_a_profile_that_disagrees_with_the_measurement_is_not_used():
    ctx = _ctx((3.0, 3.0), measured=1.8)   # in place says 1.25x, end to end 1.8x
    before = ctx.artifacts["latency_table"]
    res = CalibrateTablePass().run(None, ctx)
    assert not res.stats["calibrated"] and "1.25x" in res.stats["why"] and "1.80x" in res.stats["why"]
    assert ctx.artifacts["latency_table"] is before
    assert "calibrated_predicted_speedup" not in ctx.artifacts["verified"]


def test_the_bytes_model_explains_the_round_and_charges_sparser_options_less():
    ctx = _ctx((3.0, 3.0), measured=1.25)
    res = CalibrateTablePass().run(None, ctx)          # the default model
    assert res.stats["model"] == "bytes" and res.stats["calibrated_predicted_speedup"] == pytest.approx(1.25)
    t = ctx.artifacts["latency_table"].times * 1e3
    np.testing.assert_allclose(t[:, 2], [3.0, 3.0])    # the option that ran: exactly as measured
    assert (t[:, 1] > 4.0).all() and (t[:, 3] < 1.5).all()   # denser options gain more, sparser less than x1.5


def test_a_uniform_shift_after_a_calibration_is_the_machine_not_the_layers():
    ctx = _ctx((3.0, 3.0), measured=1.25)
    ctx.artifacts["layers"] = [SimpleNamespace(qualname=n, numel=64 * 64, weight_shape=(64, 64)) for n in "abc"]
    ctx.artifacts["latency_table"].layers.append("c")
    t = ctx.artifacts["latency_table"]
    import dataclasses
    ctx.artifacts["latency_table"] = dataclasses.replace(t, times=np.vstack([t.times, t.times[:1]]))
    ctx.artifacts["choice"] = [2, 2, 2]
    ctx.artifacts["verified"]["in_place_ms"]["artifact"]["c"] = 3.0
    ctx.artifacts["verified"]["in_place_ms"]["dense_artifact"]["c"] = 4.0
    ctx.artifacts["verified"]["measured_speedup"] = 10 / 11
    first = CalibrateTablePass().run(None, ctx)        # the first calibration: 1.5x is the table's error
    assert first.stats["calibrated"]
    calibrated = ctx.artifacts["latency_table"]
    for n in "abc":                                     # next round: every layer 1.6x its calibrated time
        ctx.artifacts["verified"]["in_place_ms"]["artifact"][n] = 4.8
    ctx.artifacts["verified"]["measured_speedup"] = 10 / 16.4
    res = CalibrateTablePass().run(None, ctx)
    assert not res.stats["calibrated"] and res.stats["state_shift"] == pytest.approx(1.6)
    assert "changed state" in res.stats["why"] and ctx.artifacts["latency_table"] is calibrated
    assert ctx.artifacts["verified"]["machine_state_shift"] == pytest.approx(1.6)
