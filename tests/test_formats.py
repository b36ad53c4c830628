"""The format registry: names, dtype axis, block geometry and magnitude masks."""
import numpy as np
import pytest
import torch

from spdy import formats
from spdy.errors import SpdyError


def test_registry_names_and_dtypes():
    assert formats.FORMATS[0] == "dense"
    assert {"bsr16x1", "bsr4x1", "bsr1x1"} <= set(formats.SPARSE_FORMATS)
    assert set(formats.INT8_FORMATS) == {"dense-int8", "bsr16x4-int8", "bsr4x4-int8", "bsr1x4-int8"}
    assert formats.get("bsr16x4-int8").block == (16, 4)
    assert formats.normalize("bsr16x4", "int8") == "bsr16x4-int8"
    assert formats.normalize("dense", "int8") == "dense-int8"
    assert formats.normalize("bsr16x1") == "bsr16x1"
    with pytest.raises(SpdyError, match="valid formats"):
        formats.get("bsr8x8")


def test_available_without_int8_kernels_has_no_int8():
    ok, why = formats.available(None, "target triple 'aarch64' is not x86")
    assert "dense" in ok and "bsr16x1" in ok
    assert not any(formats.get(f).int8 for f in ok)
    assert "aarch64" in why["dense-int8"]
    ok, why = formats.available("vnni512")
    assert set(ok) == set(formats.FORMATS) and not why


@pytest.mark.parametrize("fmt", ["bsr1x1", "bsr4x1", "bsr16x1"])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
def test_exact_block_counts_fp32(fmt, sparsity):
    br = formats.get(fmt).block_rows
    w = torch.randn(48, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    m = formats.magnitude_mask(w, fmt, sparsity)
    assert m.shape == w.shape
    blocks = m.reshape(48 // br, br, 27)
    assert ((blocks.sum(1) == 0) | (blocks.sum(1) == br)).all()  # whole blocks only
    assert int((blocks.sum(1) == 0).sum()) == round(sparsity * (48 // br) * 27)


def test_keeps_largest_blocks():
    w = torch.zeros(32, 4)
    w[16:, 1] = 5.0
    w[:16, 3] = 1.0
    m = formats.magnitude_mask(w, "bsr16x1", 0.75)
    assert m[16:, 1].all() and m.sum() == 32
    assert formats.block_scores(w, "bsr16x1", w.shape)[1, 1] == 16 * 25.0


def test_uneven_rows_are_padded_and_numpy_roundtrips():
    w = np.random.default_rng(0).standard_normal((10, 5)).astype(np.float32)
    m = formats.magnitude_mask(w, "bsr4x1", 0.5)
    assert isinstance(m, np.ndarray) and m.shape == (10, 5) and m.dtype == np.float32


def test_int8_linear_blocks_span_four_inputs():
    w = torch.randn(32, 10, generator=torch.Generator().manual_seed(1))   # K=10: last group has 2 inputs
    groups, n = formats.column_groups("bsr16x4-int8", w.shape)
    assert n == 3 and groups.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    m = formats.magnitude_mask(w, "bsr16x4-int8", 0.5)
    keep = m.reshape(2, 16, 10)
    assert torch.all(keep == keep[:, :1, :])                 # 16 rows share a mask
    for g in range(3):
        cols = keep[:, 0, groups == g]
        assert torch.all(cols == cols[:, :1])                # 4 inputs share a mask
    assert int((keep[:, 0, [0, 4, 8]] == 0).sum()) == round(0.5 * 6)


def test_int8_conv_blocks_are_four_channels_at_one_tap():
    # [O, C, KH, KW] with C=6: groups of channels {0-3}, {4-5} at each of the 9 taps
    w = torch.randn(4, 6, 3, 3, generator=torch.Generator().manual_seed(2))
    groups, n = formats.column_groups("bsr1x4-int8", w.shape)
    assert n == 9 * 2
    g = groups.reshape(6, 9)                                 # column = c * 9 + tap
    assert torch.equal(torch.as_tensor(g[0]), torch.as_tensor(g[3]))   # channels 0 and 3: same group
    assert not np.array_equal(g[3], g[4])
    assert len(set(g[:, 0].tolist())) == 2 and len(set(g[0].tolist())) == 9
    m = formats.magnitude_mask(w, "bsr1x4-int8", 0.5)
    flat = m.reshape(4, 6, 9)
    assert torch.all(flat[:, :4, :] == flat[:, :1, :]) and torch.all(flat[:, 4:, :] == flat[:, 4:5, :])
    assert int((flat[:, [0, 4], :] == 0).sum()) == round(0.5 * 4 * 18)


def test_progressive_masks_keep_pruned_blocks_pruned():
    w = torch.randn(32, 16, generator=torch.Generator().manual_seed(3))
    first = formats.block_mask(w, "bsr4x4-int8", 0.5)
    w2 = w * first + 10.0 * (~first)          # pruned blocks grow large: must stay pruned anyway
    second = formats.block_mask(w2, "bsr4x4-int8", 0.75, prev_keep=first)
    assert torch.all(second <= first)


def test_validate_profile_dtype_axis():
    clean = formats.validate_profile({"a": {"format": "bsr16x4", "dtype": "int8", "sparsity": 0.9},
                                      "b": {"format": "dense-int8"},
                                      "c": {"format": "bsr16x1", "sparsity": 0.0}}, ["a", "b", "c"])
    assert clean["a"] == {"format": "bsr16x4-int8", "dtype": "int8", "sparsity": 0.9}
    assert clean["b"] == {"format": "dense-int8", "dtype": "int8", "sparsity": 0.0}
    assert clean["c"]["format"] == "dense"
    with pytest.raises(SpdyError, match="is dense"):
        formats.validate_profile({"a": {"format": "dense-int8", "sparsity": 0.5}}, ["a"])
    with pytest.raises(SpdyError, match="unknown dtype"):
        formats.validate_profile({"a": {"format": "bsr16x1", "dtype": "int4"}}, ["a"])


def test_validate_profile_normalises():
    out = formats.validate_profile({"a": {"format": "bsr4x1", "sparsity": 0.5},
                                    "b": {"format": "bsr16x1", "sparsity": 0}}, ["a", "b"])
    assert out == {"a": {"format": "bsr4x1", "dtype": "fp32", "sparsity": 0.5},
                   "b": {"format": "dense", "dtype": "fp32", "sparsity": 0.0}}


def test_validate_profile_reports_everything():
    with pytest.raises(SpdyError) as e:
        formats.validate_profile({"x": {}, "a": {"format": "csr", "sparsity": 0.5}, "b": {"sparsity": 1.5}},
                                 ["a", "b"])
    msg = str(e.value)
    assert "unknown layer 'x'" in msg and "unknown weight format 'csr'" in msg and "[0, 1)" in msg
    assert "Valid layers: a, b" in msg


def test_block_shape():
    assert formats.block_shape("bsr16x1") == (16, 1)
    with pytest.raises(SpdyError, match="valid formats"):
        formats.block_shape("bsr2x2")
