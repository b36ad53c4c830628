"""Compiled dense models match PyTorch within 1e-4, before and after save/load in a new process."""
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

import spdy
from spdy.errors import CalibrationError, NotAvailableError, TargetError, UnsupportedOpError
from spdy.models import bert_encoder_block, mnist_resnet, resnet18

CASES = {
    "mnist_resnet": (lambda: mnist_resnet(), (1, 1, 28, 28)),
    "resnet18_small": (lambda: resnet18(num_classes=10, width=8), (1, 3, 32, 32)),
    "bert_block": (lambda: bert_encoder_block(hidden=64, heads=4, ffn=128), (1, 16, 64)),
}

# A new process in which torch cannot be imported: deploying needs only tvm's runtime + numpy.
LOAD_AND_RUN = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
import numpy as np, spdy
m = spdy.load(sys.argv[1])
np.save(sys.argv[3], m(np.load(sys.argv[2])))
"""


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_after_reload(name, tmp_path, convnet):
    factory, shape = CASES[name]
    model = factory()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    ref = model(x).detach().numpy()
    cm = spdy.compile(model, (x,), tune=False, measure=False)
    np.testing.assert_allclose(cm(x.numpy()), ref, atol=1e-4, rtol=0)
    out = cm.save(tmp_path / name)
    np.save(tmp_path / "x.npy", x.numpy())
    subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(out), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref, atol=1e-4, rtol=0)
    assert all(r["status"] == "ok" for r in cm.passlog)


def test_convnet_variants_and_report(convnet, image):
    cm = spdy.compile(convnet, (image,), tune=False)
    np.testing.assert_allclose(cm(image).numpy(), convnet(image).detach().numpy(), atol=1e-4)
    base = cm.report["baseline"]
    assert base["dense_artifact"]["median_ms"] > 0 and base["torch_eager"]["median_ms"] > 0
    assert base["speedup_vs_torch_eager"] == pytest.approx(
        base["torch_eager"]["median_ms"] / base["dense_artifact"]["median_ms"])
    if importlib.util.find_spec("onnxruntime"):  # the dense model in onnxruntime, timed in the same rounds
        assert base["speedup_vs_onnxruntime"] == pytest.approx(
            base["onnxruntime"]["median_ms"] / base["dense_artifact"]["median_ms"])
    assert [l["qualname"] for l in cm.report["layers"]] == ["conv1", "dw", "grouped", "strided", "fc"]


def test_sparse_compile_without_calibration(convnet, image):
    with pytest.raises(CalibrationError, match="no calibration set"):
        spdy.compile(convnet, (image,), speedup=2.0)


def test_channels_mode_takes_no_profile(convnet, image):
    # mode="channels" itself is tested in tests/passes/test_channel_compile.py
    with pytest.raises(NotAvailableError, match="mode='sparse'"):
        spdy.compile(convnet, (image,), mode="channels", profile={"dw": {"format": "bsr16x1", "sparsity": 0.5}})


def test_unknown_target(convnet, image):
    with pytest.raises(TargetError, match="accepted target forms"):
        spdy.compile(convnet, (image,), target="gpu please")


def test_unsupported_ops_listed_at_once():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.special.erfinv(torch.tanh(x)) + torch.cummax(x, 0)[0]

    with pytest.raises(UnsupportedOpError) as e:
        spdy.compile(Odd(), (torch.randn(4, 4),), measure=False)
    assert "special_erfinv" in str(e.value) and "cummax" in str(e.value)
