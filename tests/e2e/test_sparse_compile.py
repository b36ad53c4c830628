"""Sparse compiles: a given profile, and the SPDY search with its speedup check."""
import importlib.util

import numpy as np
import pytest
import torch

import spdy
from spdy.errors import CalibrationError, InfeasibleSpeedupError, SpdyError
from spdy.passes.algo.budget_correction import NOISE, judge_round
from tests.compile.fakes import base_s, fixed_latency_table
from tests.steady_device import SteadyDevice


class Wide(torch.nn.Module):
    """Big enough layers that 90% block sparsity is clearly faster than dense."""

    def __init__(self, width=512, depth=4):
        super().__init__()
        self.inp = torch.nn.Linear(64, width)
        self.hidden = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(depth))
        self.out = torch.nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.inp(x))
        for h in self.hidden:
            x = torch.relu(h(x))
        return self.out(x)


@pytest.fixture(scope="module")
def wide():
    torch.manual_seed(0)
    # batch 64: at batch 16 the whole model took ~0.1 ms, and per-call overheads made the
    # reachable speedup (1.19-1.5x) a matter of machine noise against the 1.3x the tests ask
    return Wide().eval(), torch.randn(64, 64, generator=torch.Generator().manual_seed(1))


def test_profile_compile_runs_the_pruned_weights(wide):
    model, x = wide
    prof = {"hidden.0": {"format": "bsr16x1", "sparsity": 0.9}, "hidden.1": {"format": "bsr4x1", "sparsity": 0.8},
            "hidden.2": {"format": "bsr1x1", "sparsity": 0.7}}
    cm = spdy.compile(model, (x,), profile=prof, tune=False)
    ref = cm.pruned_model(x)
    np.testing.assert_allclose(cm(x).numpy(), ref.detach().numpy(), atol=1e-4)
    w = cm.pruned_model.get_submodule("hidden.0").weight.detach()
    blocks = w.reshape(512 // 16, 16, 512).abs().sum(1)  # [block rows, cols]: zero or not, per 16x1 block
    assert float((blocks == 0).float().mean()) == pytest.approx(0.9, abs=0.01)
    assert (w.reshape(32, 16, 512) == 0).all(1).sum() == (blocks == 0).sum()  # whole blocks pruned
    assert cm.report["pruned"]["hidden.1"] == pytest.approx(0.8, abs=0.01)
    assert cm.report["measured_speedup"] > 0 and cm.report["rounds"][0]["dense_artifact"]["median_ms"] > 0
    assert cm.profile["hidden.0"] == {"format": "bsr16x1", "dtype": "fp32", "sparsity": 0.9}


def test_bad_profile_lists_valid_names(wide):
    model, x = wide
    with pytest.raises(SpdyError) as e:
        spdy.compile(model, (x,), profile={"nope": {"format": "bsr16x1", "sparsity": 0.5},
                                           "hidden.0": {"format": "bsr8x8", "sparsity": 0.5}}, measure=False)
    msg = str(e.value)
    assert "unknown layer 'nope'" in msg and "unknown weight format 'bsr8x8'" in msg
    assert "hidden.3" in msg and "bsr16x1" in msg


FP32 = ("bsr16x1",)   # these tests are about the fp32 search; tests/e2e/test_int8_compile.py has the int8 ones


class _SteadyTable(SteadyDevice):
    """SteadyDevice whose dense artifact also times the fixed table's base (tests/compile/fakes.py)
    and that profiles nothing in place, so the latency table is the formula alone: with one
    core busy the real dense artifact measured 20 ms against 4 ms of in-place layers, and the
    16 ms left as fixed time made 1.3x infeasible."""

    def __init__(self, speedup: float, model):
        super().__init__(speedup)
        self.base = base_s(model)

    def time_artifact(self, built, arrays, *, repeat=7, min_repeat_ms=100.0):
        from spdy.runtime.measure import Measurement
        return Measurement.from_samples(np.full(3, self.base))

    def profile_calls(self, artifacts, *, runs=10):
        return None
CALIB = [torch.randn(16, 64, generator=torch.Generator().manual_seed(i)) for i in range(4)]


def test_spdy_meets_speedup_on_the_measured_artifact(wide, tmp_path):
    # the latency table is a fixed formula (tests/compile/fakes.py) and the end-to-end check
    # reads 1.35x from a steady device: with one core busy the real table called 1.3x
    # infeasible (max 1.13x), so the test asserts the loop's logic, not the clock (issue 21 item 5);
    # the kernels, the artifact and the caches are real
    model, x = wide
    with fixed_latency_table():
        cm = spdy.compile(model, (x,), speedup=1.3, calib=CALIB, n_samples=64, grid_levels=6, max_evals=12,
                          tune=False, workdir=tmp_path, formats=FP32, measure=_SteadyTable(1.35, model))
    r = cm.report
    assert r["measured_speedup"] == pytest.approx(1.35, rel=0.01) and r["measured_speedup"] >= 1.3 * (1 - NOISE)
    assert r["rounds"] and all("measured_speedup" in x and x["predicted_speedup"] for x in r["rounds"])
    # the logic: round 0 solved against the real table to a profile predicted to meet the target,
    # met it as measured, and stopped there
    assert len(r["rounds"]) == 1 and r["rounds"][0]["predicted_speedup"] >= 1.3 * (1 - NOISE)
    p10, med, p90 = r["rounds"][0]["measured_speedup_p10_median_p90"]
    assert p10 < med < p90
    if importlib.util.find_spec("onnxruntime"):  # every round also times the dense model in onnxruntime
        assert all(x["speedup_vs_onnxruntime"] == pytest.approx(x["onnxruntime"]["median_ms"] / x["artifact"]["median_ms"])
                   for x in r["rounds"])
    assert set(cm.profile) == {"inp", "hidden.0", "hidden.1", "hidden.2", "hidden.3", "out"}
    assert cm.profile["inp"]["format"] == "dense" and cm.profile["out"]["format"] == "dense"
    assert any(p["sparsity"] > 0 for p in cm.profile.values())
    np.testing.assert_allclose(cm(x).numpy(), cm.pruned_model(x).detach().numpy(), atol=1e-4)
    passes = [p["pass"] for p in cm.passlog]
    assert passes[:7] == ["trace", "canonicalize", "fuse-epilogues", "dense-baseline", "insert-masks",
                          "profile-latency", "build-database"]
    # a second compile reuses the reconstruction database (the latency table's reuse of its
    # database is tests/runtime/test_layer_latency.py's)
    with fixed_latency_table():
        cm2 = spdy.compile(model, (x,), speedup=1.3, calib=CALIB, n_samples=64, grid_levels=6, max_evals=12,
                           tune=False, formats=FP32, measure=_SteadyTable(1.35, model))
    stats = {p["pass"]: p["stats"] for p in cm2.passlog}
    assert stats["build-database"]["built"] == 0 and stats["build-database"]["reused"] > 0


def test_infeasible_speedup_names_the_maximum(wide):
    model, x = wide
    with pytest.raises(InfeasibleSpeedupError) as e, fixed_latency_table():  # a busy core read max 1.00x
        spdy.compile(model, (x,), speedup=50, calib=CALIB, n_samples=32, grid_levels=4, tune=False, formats=FP32)
    assert 1.0 < e.value.max_speedup < 50 and "largest reachable speedup" in str(e.value)
    assert e.value.exit_code == 3


@pytest.mark.parametrize("calib,needle", [([], "empty"), ([torch.randn(16, 65)], "shape"),
                                          ([torch.full((16, 64), float("nan"))], "NaN")])
def test_bad_calibration_fails_before_long_work(wide, calib, needle, tmp_path):
    model, x = wide
    with pytest.raises(CalibrationError, match=needle):
        spdy.compile(model, (x,), speedup=2.0, calib=calib, workdir=tmp_path)
    assert not (tmp_path / "passlog.jsonl").exists()  # no pass ran


def test_nan_weights_fail_early(wide, tmp_path):
    model, x = wide
    bad = Wide().eval()
    bad.load_state_dict(model.state_dict())
    with torch.no_grad():
        bad.hidden[1].weight[0, 0] = float("nan")
    with pytest.raises(CalibrationError, match="hidden.1"):
        spdy.compile(bad, (x,), speedup=2.0, calib=CALIB, workdir=tmp_path)


def test_global_adaprune_tunes_the_stitched_model(wide, tmp_path):
    model, x = wide
    with fixed_latency_table():   # the table and the end-to-end check do not read the clock
        cm = spdy.compile(model, (x,), speedup=1.3, calib=CALIB, n_samples=64, grid_levels=6, max_evals=8,
                          tune=False, global_adaprune=20, workdir=tmp_path, formats=FP32, measure=SteadyDevice(1.35))
    rec = [p["stats"] for p in cm.passlog if p["pass"] == "global-adaprune"]
    tuned = [r for r in rec if r["steps"]]  # a round that pruned nothing has nothing to tune
    assert tuned and all(r["steps"] == 20 and r["loss_after"] <= r["loss_before"] for r in tuned)
    # tuning cannot change speed, so only rounds whose artifact met the target are tuned
    met = [r for r in cm.report["rounds"]
           if judge_round(r["measured_speedup"], r.get("predicted_speedup"), 1.3).meets]
    assert len(rec) == len(met) >= 1   # the steady 1.35x meets 1.3x, so at least round 0 is tuned
    for name, p in cm.profile.items():
        if p["sparsity"] > 0:  # masks still hold after tuning
            w = cm.pruned_model.get_submodule(name).weight.detach()
            assert float((w == 0).float().mean()) >= p["sparsity"] - 0.01
    np.testing.assert_allclose(cm(x).numpy(), cm.pruned_model(x).detach().numpy(), atol=1e-4)


def test_keep_dense_unknown_layer_is_named(wide, tmp_path):
    model, x = wide
    with pytest.raises(SpdyError, match="keep_dense names unknown layer.*'nope'.*hidden.0"):
        spdy.compile(model, (x,), speedup=1.3, calib=CALIB, n_samples=32, grid_levels=4, tune=False,
                     keep_dense=["nope"], workdir=tmp_path)
