"""spdy/checks.py: bad inputs refused before any timing, with one line naming the fix."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import spdy
from spdy import checks
from spdy.api import compile_options
from spdy.errors import InputShapeError, ModelError, NoPrunableLayerError, OptionError, OutputPathError
from spdy.ir.trace import normalize_inputs


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(768, 3072), nn.GELU(), nn.Linear(3072, 768)).eval()


@pytest.fixture
def no_long_work(monkeypatch):
    """Fails the test if the compile gets past the checks (the device is contacted right after)."""
    import spdy.compiler.driver as driver

    def reached(*a, **k):
        raise AssertionError("the compile went past the checks into the long work")
    monkeypatch.setattr(driver, "measure_device", reached)


def test_issue_mlp_with_both_layers_kept_dense_fails_fast_naming_keep_dense(no_long_work):
    x = torch.randn(4, 768)
    calib = [torch.randn(4, 768) for _ in range(2)]
    # imports and torch's first-call costs paid (tvm, fx), so the time printed below is the checks'
    checks.frontend_layers(nn.Linear(4, 4).eval(), normalize_inputs((torch.randn(1, 4),)), compile_options(speedup=1.5))
    t0 = time.perf_counter()
    with pytest.raises(NoPrunableLayerError, match=r"keep_dense=\[\]"):
        spdy.compile(_mlp(), (x,), speedup=1.5, calib=calib, formats=("bsr16x1",), keep_dense=["0", "2"])
    print(f"refused in {time.perf_counter() - t0:.2f} s")   # ~0.3 s here; 26 s of timing before issue 21


def test_default_keep_dense_prunes_a_two_layer_mlp():
    """The old default (first and last layer dense) left the issue's MLP nothing to prune."""
    o = compile_options(speedup=1.5, formats=("bsr16x1",))
    inputs = normalize_inputs((torch.randn(4, 768),))
    options, calib = checks.check_before_long_work(_mlp(), inputs, o, calib=[torch.randn(4, 768)],
                                                   offered=("bsr16x1",))
    assert options.keep_dense == () and calib is not None


def test_default_keep_dense_keeps_a_cnns_cheap_stem_and_classifier():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(),
                      nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    inputs = normalize_inputs((torch.randn(1, 3, 16, 16),))
    layers = checks.frontend_layers(m, inputs, compile_options(speedup=2.0))
    assert checks.default_keep_dense(layers) == ("0", "10")


def test_int8_formats_leave_kept_layers_something_to_do():
    inputs = normalize_inputs((torch.randn(4, 768),))
    layers = checks.frontend_layers(_mlp(), inputs, compile_options(speedup=1.5))
    keep = ("0", "2")
    checks.check_something_to_search(layers, keep, ("bsr16x1", "dense-int8"))   # dense-int8 is an option
    with pytest.raises(NoPrunableLayerError):
        checks.check_something_to_search(layers, keep, ("bsr16x1",))


def test_keep_dense_unknown_name_is_refused_before_timing(no_long_work):
    with pytest.raises(OptionError, match="keep_dense names unknown layer.*'nope'"):
        spdy.compile(_mlp(), (torch.randn(4, 768),), speedup=1.5, calib=[torch.randn(4, 768)], keep_dense=["nope"])


@pytest.mark.parametrize("speedup", [float("nan"), float("inf"), "fast", None, True, [2.0], 0.5])
def test_bad_speedups(speedup):
    with pytest.raises(OptionError, match="speedup must be"):
        compile_options(speedup=speedup)


@pytest.mark.parametrize("name,value", [("n_samples", 0), ("rounds", 0), ("grid_levels", 1), ("num_threads", 0),
                                        ("max_evals", -1), ("seed", 1.5), ("global_adaprune", -2)])
def test_bad_numeric_options(name, value):
    with pytest.raises(OptionError, match=name):
        compile_options(**{name: value})


@pytest.mark.parametrize("profile,needle", [
    ({"0": {"format": "bsr99x1", "sparsity": 0.5}}, "bsr99x1"),
    ({"0": {"format": "bsr16x1", "sparsity": 1.0}}, r"\[0, 1\)"),
    ({"0": {"format": "bsr16x1", "sparsity": float("nan")}}, r"\[0, 1\)"),
    ({"0": {"format": "bsr16x1", "sparsity": -0.1}}, r"\[0, 1\)"),
    ([("0", 0.5)], "profile must be a dict"),
])
def test_bad_profile_entries_refused_before_timing(profile, needle, no_long_work):
    with pytest.raises(spdy.SpdyError, match=needle):
        spdy.compile(_mlp(), (torch.randn(4, 768),), profile=profile)


def test_profile_unknown_layer_refused_before_the_dense_baseline(no_long_work):
    with pytest.raises(spdy.SpdyError, match="unknown layer 'fc9'"):
        spdy.compile(_mlp(), (torch.randn(4, 768),), profile={"fc9": {"format": "bsr16x1", "sparsity": 0.5}})


def test_unwritable_workdir_and_output(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="not a directory"):
        compile_options(workdir=f)
    with pytest.raises(OutputPathError, match="not writable"):
        compile_options(workdir="/proc/spdy-nope/w")
    with pytest.raises(OutputPathError, match="cannot be written"):
        checks.check_output_path("/proc/spdy-nope/out")
    assert checks.check_output_path(tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()
    assert not (tmp_path / "a").exists()   # nothing made by a check


def test_model_checks():
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))   # training mode by default
    with pytest.raises(ModelError, match=r"model.eval\(\)"):
        checks.check_model(bn)
    checks.check_model(bn.eval())
    with pytest.raises(ModelError, match="meta device"):
        checks.check_model(nn.Linear(2, 2, device="meta"))


class _Returns(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind, self.fc = kind, nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        return {"dict": {"y": y}, "none": None, "tuple": (y, "label"), "int": 3, "ok": (y, y)}[self.kind]


@pytest.mark.parametrize("kind,needle", [("dict", "returns a dict"), ("none", "returns None"),
                                         ("tuple", "non-tensor items"), ("int", "returns a int")])
def test_outputs_must_be_tensors(kind, needle):
    with pytest.raises(ModelError, match=needle):
        checks.check_outputs(_Returns(kind).eval(), normalize_inputs((torch.randn(1, 4),)))
    checks.check_outputs(_Returns("ok").eval(), normalize_inputs((torch.randn(1, 4),)))


@pytest.mark.parametrize("x,needle", [(torch.ones(0, 4), "empty"), (torch.tensor(1.0), "scalar"),
                                      (torch.ones(2, 4, dtype=torch.complex64), "dtype torch.complex64")])
def test_example_input_checks(x, needle):
    with pytest.raises(InputShapeError, match=needle):
        checks.check_example_inputs(normalize_inputs((x,)))
