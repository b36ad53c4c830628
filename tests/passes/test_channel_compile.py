"""The structured compile: channel-surgery pass, spdy.compile(mode="channels"), clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import spdy
from spdy.api import compile_options, compile_with
from spdy.chex import ChannelSurgeryError, channel_groups, prune_by_sparsity
from spdy.chex._testmodels import SmallCNN, residual_cnn
from spdy.compiler.channels import ChannelsStrategy
from spdy.errors import CalibrationError, InfeasibleSpeedupError, NotAvailableError
from spdy.ir.trace import normalize_inputs
from spdy.passes.channel_surgery import ChannelSurgeryPass
from spdy.passes.algo.budget_correction import NOISE
from spdy.passes.context import CompileContext
from spdy.passes.pipeline import Pipeline
from spdy.passes.registry import parse_pass, registered
from tests.steady_device import SteadyDevice

X = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _ctx(model, x, plan=None):
    ctx = CompileContext(model=model, inputs=normalize_inputs((x,)), target=None)
    if plan is not None:
        ctx.artifacts["channel_plan"] = plan
    return ctx


def test_prune_channels_is_top_level():
    assert spdy.prune_channels is spdy.chex.prune_channels


def test_channel_passes_registered_and_round_trip():
    import spdy.passes.profile_channels  # noqa: F401
    import spdy.passes.solve_channels  # noqa: F401
    names = registered()
    for n in ("channel-surgery", "profile-channels", "solve-channels"):
        assert n in names
    p = parse_pass("channel-surgery{reconstruct=False}")
    assert p == ChannelSurgeryPass(reconstruct=False)
    assert parse_pass(p.to_text()) == p


def test_channel_surgery_pass_prunes_and_records_history():
    model = SmallCNN().eval()
    ctx = _ctx(model, X, {"keep": {"conv1": [0, 2, 5], "conv2": [1, 3]}})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out, records = Pipeline([ChannelSurgeryPass()]).run(None, ctx)
    small = ctx.artifacts["pruned_model"]
    assert out is small
    assert small.conv1.out_channels == 3 and small.conv2.in_channels == 3 and small.conv2.out_channels == 2
    assert small(X).shape == model(X).shape
    hist = ctx.artifacts["channel_history"]
    assert json.loads(json.dumps(hist)) == hist
    assert torch.equal(spdy.chex.replay(model, hist)(X), small(X))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # user model untouched
    assert records[-1]["stats"]["groups_pruned"] == 2


def test_channel_surgery_pass_keeps_everything_exactly():
    model = SmallCNN().eval()
    ctx = _ctx(model, X, {"keep": {}})
    Pipeline([ChannelSurgeryPass()]).run(None, ctx)
    assert torch.equal(ctx.artifacts["pruned_model"](X), model(X))


def test_channel_surgery_pass_errors_name_the_group():
    model = SmallCNN().eval()
    with pytest.raises(ChannelSurgeryError, match=r"group \d+ \(conv1\): cannot prune all"):
        Pipeline([ChannelSurgeryPass()]).run(None, _ctx(model, X, {"keep": {"conv1": []}}))
    with pytest.raises(ChannelSurgeryError, match="'keep'"):
        Pipeline([ChannelSurgeryPass()]).run(None, _ctx(model, X, {"widths": {}}))


def test_prune_by_sparsity_errors_name_the_group():
    model = SmallCNN().eval()
    with pytest.raises(ChannelSurgeryError, match=r"group \d+ \(conv1\).*\[0, 1\), got 1.0"):
        prune_by_sparsity(model, X, {"conv1": 1.0})
    with pytest.raises(ChannelSurgeryError, match=r"group \d+ \(conv2\).*got -0.1"):
        prune_by_sparsity(model, X, {"conv2": -0.1})
    with pytest.raises(ChannelSurgeryError, match=r"all groups.*\[0, 1\)"):
        prune_by_sparsity(model, X, 1.5)
    with pytest.raises(ChannelSurgeryError, match="not prunable"):
        prune_by_sparsity(model, X, {"fc": 0.5})


def test_prune_by_sparsity_with_refit_is_closer_to_dense():
    torch.manual_seed(0)
    model = residual_cnn().eval()
    x = torch.randn(1, 1, 28, 28)
    batches = [torch.randn(8, 1, 28, 28) for _ in range(4)]
    plain, h1 = prune_by_sparsity(model, x, 0.5)
    fitted, h2 = prune_by_sparsity(model, x, 0.5, calib=batches)
    assert h1 == h2
    groups = {g.name: g for g in channel_groups(plain, (x,))}
    assert groups["conv1"].size == 8
    with torch.no_grad():
        ref = torch.cat([model(b) for b in batches])
        e_plain = float(((torch.cat([plain(b) for b in batches]) - ref) ** 2).mean())
        e_fit = float(((torch.cat([fitted(b) for b in batches]) - ref) ** 2).mean())
    assert e_fit < e_plain


def test_channels_mode_needs_calibration_and_no_profile(convnet, image):
    with pytest.raises(CalibrationError, match="no calibration set"):
        spdy.compile(convnet, (image,), speedup=2.0, mode="channels")
    with pytest.raises(NotAvailableError, match="profile"):
        spdy.compile(convnet, (image,), mode="channels", profile={"conv1": {"format": "bsr16x1", "sparsity": 0.5}})


COARSE = ChannelsStrategy(ratios=(1.0, 0.5))   # a coarse width grid: fewer layer timings


def _compile(model, x, **kw):
    """spdy.compile(mode="channels", ...) with the coarse grid."""
    calib = kw.pop("calib")
    return compile_with(model, (x,), compile_options(mode="channels", **kw), calib=calib, strategy=COARSE)


def test_structured_compile_tiny_residual_cnn(tmp_path):
    torch.manual_seed(0)
    model = residual_cnn(widths=(32, 64, 128)).eval()
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    calib = [torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2 + i)) for i in range(2)]
    # layer times and in-place profiles are real; the end-to-end check reads a steady 1.15x, so
    # the test holds on a busy machine (issue 21 item 5) and checks the loop's logic
    cm = _compile(model, x, speedup=1.1, calib=calib, tune=False, n_samples=16, rounds=2, workdir=tmp_path / "w",
                  measure=SteadyDevice(1.15))
    r = cm.report
    assert r["mode"] == "channels"
    stats = {p["pass"]: p["stats"] for p in cm.passlog}
    assert stats["profile-channels"]["timing"] == "in-place"      # layer times from the dense artifact
    anchors = stats["profile-channel-anchors"]["anchors"]
    assert [a["ratio"] for a in anchors] == list(COARSE.anchors) and all(a["points"] > 0 for a in anchors)
    assert all("channel_calibration" in rd for rd in r["rounds"])
    assert r["measured_speedup"] >= 1.1 * (1 - NOISE)
    assert r["rounds"] and all("widths" in rd and rd["predicted_speedup"] for rd in r["rounds"])
    assert len(r["rounds"]) == 1 and r["rounds"][0]["predicted_speedup"] >= 1.1 * (1 - NOISE)  # met in round 0
    widths = r["channels"]["widths"]
    assert any(v < model.state_dict()[f"{k}.weight"].shape[0] for k, v in widths.items())
    assert "conv1" in widths and "fc" not in widths          # model output channels stay full
    small = cm.pruned_model
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        ref = small(x).numpy()
    assert np.abs(np.asarray(cm(x.numpy())) - ref).max() < 1e-4
    again = spdy.chex.replay(model, r["channels"]["history"])
    assert [p.shape for p in again.parameters()] == [p.shape for p in small.parameters()]
    out = cm.save(tmp_path / "art")
    rep = json.loads((out / "report.json").read_text())
    assert rep["channels"]["history"] == r["channels"]["history"]
    m = spdy.load(out)
    assert np.abs(np.asarray(m(x.numpy())) - ref).max() < 1e-4


def test_structured_compile_infeasible_is_clear():
    model = residual_cnn().eval()
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(InfeasibleSpeedupError, match="not reachable"):
        _compile(model, x, speedup=50.0, calib=[torch.randn(4, 1, 28, 28)], tune=False, n_samples=4, rounds=1)


def test_pruned_model_lowers_exactly():
    """A CSS-pruned, least-squares re-fitted model goes through the dense lowering unchanged."""
    torch.manual_seed(0)
    model = residual_cnn().eval()
    x = torch.randn(1, 1, 28, 28)
    small, _ = prune_by_sparsity(model, (x,), {"conv1": 0.5, "layers.1.0.conv1": 0.75, "layers.2.0.conv2": 0.25},
                                 calib=[torch.randn(4, 1, 28, 28)])
    cm = spdy.compile(small, (x,), tune=False, measure=False)
    with torch.no_grad():
        ref = small(x).numpy()
    assert np.abs(np.asarray(cm(x.numpy())) - ref).max() < 1e-4
