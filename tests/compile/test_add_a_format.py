"""Adding a weight format touches one file plus its registration, for an fp32 block format.

The registration below is the whole of it for "bsr8x1" (8 output rows x 1 input per block):
spdy.formats.register(Format(...)). Profiles, `formats=`, the latency table, the
reconstruction database (masks by block norm), the search and the lowering then know it,
because they all read block geometry from the registry, and the fp32 block-sparse kernels
(spdy/runtime/sparse) take the block height as a template parameter.

What else other formats need, exactly:
- an int8 format (blocks of R rows x 4 inputs, one VNNI lane) also needs its block height R
  in the int8 kernels' three tables, which are written out by hand and checked only for
  R in {16, 4, 1}: spdy/runtime/int8/sparse_linear.py SPARSE_FORMATS,
  spdy/runtime/int8/conv_blocks.py BLOCK_ROWS and spdy/runtime/int8/emit.py LINEAR_FORMATS;
- any other block shape (fp32 blocks wider than one input, int8 blocks not 4 inputs wide)
  needs new kernel templates: the fp32 kernels vectorize over the R rows of an Rx1 block and
  the int8 ones over a 4-byte VNNI lane.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import spdy
from spdy import formats
from spdy.errors import SpdyError
from tests.compile.fakes import FakeDevice, base_s, fixed_latency_table

TOY = formats.Format("bsr8x1", 8, 1, why="fp32 block-sparse, 8 outputs per block (a test's toy)")


@pytest.fixture
def toy_format():
    formats.register(TOY)                 # the registration
    yield TOY.name
    formats.unregister(TOY.name)


class ConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 32, 3, padding=1)
        self.fc = torch.nn.Linear(32 * 8 * 8, 64)
        self.out = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.out(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))


def _zero_blocks(w: torch.Tensor, rows: int) -> float:
    """Share of (rows x 1) blocks of w.reshape(O, -1) that are all zero."""
    m = w.detach().reshape(w.shape[0] // rows, rows, -1)
    return float((m == 0).all(dim=1).float().mean())


def test_the_registry_knows_it_only_while_registered(toy_format):
    assert toy_format in formats.FORMATS and toy_format in formats.SPARSE_FORMATS
    assert toy_format in formats.available(None)[0] and formats.block_shape(toy_format) == (8, 1)
    with pytest.raises(SpdyError, match="already registered"):
        formats.register(TOY)
    formats.unregister(toy_format)
    with pytest.raises(SpdyError, match="unknown weight format 'bsr8x1'"):
        formats.get(toy_format)
    with pytest.raises(SpdyError, match="built-in"):
        formats.unregister("bsr16x1")
    formats.register(TOY)


def test_a_profile_in_the_new_format_runs_on_the_kernels(toy_format):
    torch.manual_seed(0)
    model, x = ConvNet().eval(), torch.randn(2, 8, 8, 8)
    cm = spdy.compile(model, (x,), profile={"conv": {"format": toy_format, "sparsity": 0.5},
                                           "fc": {"format": toy_format, "sparsity": 0.75}}, tune=False, measure=False)
    assert cm.profile["fc"] == {"format": toy_format, "dtype": "fp32", "sparsity": 0.75}
    kernels = next(p for p in cm.passlog if p["pass"] == "lower-to-tvm")["stats"]["sparse_layers"]
    assert kernels == 2
    np.testing.assert_allclose(cm(x).numpy(), cm.pruned_model(x).detach().numpy(), atol=1e-4)
    assert _zero_blocks(cm.pruned_model.get_submodule("fc").weight, 8) == pytest.approx(0.75, abs=0.01)
    assert _zero_blocks(cm.pruned_model.get_submodule("conv").weight, 8) == pytest.approx(0.5, abs=0.02)


def test_the_search_is_offered_the_new_format(toy_format, tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).eval()
    g = torch.Generator().manual_seed(1)
    x, calib = torch.randn(8, 32, generator=g), [torch.randn(8, 32, generator=g) for _ in range(2)]
    with fixed_latency_table():
        cm = spdy.compile(model, (x,), speedup=1.3, calib=calib, formats=(toy_format,), n_samples=16, grid_levels=6,
                          max_evals=8, tune=False, compare_onnxruntime=False, measure=FakeDevice(base_s(model), 1.3),
                          workdir=tmp_path)
    assert cm.report["formats"]["offered"] == [toy_format]
    table = next(p for p in cm.passlog if p["pass"] == "profile-latency")
    assert f"formats=[{toy_format}]" in table["options"]
    db = next(p for p in cm.passlog if p["pass"] == "build-database")["stats"]
    assert db["built"] > 0                                    # reconstructions in the new block shape
    pruned = {n: p for n, p in cm.profile.items() if p["sparsity"] > 0}
    assert pruned and {p["format"] for p in pruned.values()} == {toy_format}
    for name, p in pruned.items():
        assert _zero_blocks(cm.pruned_model.get_submodule(name).weight, 8) == pytest.approx(p["sparsity"], abs=0.02)
    np.testing.assert_allclose(cm(x).numpy(), cm.pruned_model(x).detach().numpy(), atol=1e-4)
