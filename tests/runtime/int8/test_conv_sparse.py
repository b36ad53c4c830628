"""Block-sparse int8 conv kernels (bsr16x4, bsr4x4, bsr1x4) against the integer reference,
with empty block rows, an all-zero weight, output-channel tails, and both formulations."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.runtime.int8.conv import ConvParams
from spdy.runtime.int8.sparse_conv import to_int8_bsr

from ._conv_util import DYNAMIC, STATIC, assert_close, random_layer, run_layer, target

CASES = {
    # shape, weight shape, stride, padding, dilation, bias, residual, activation
    "3x3_relu": ((1, 8, 9, 20), (20, 8, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, False, "relu"),
    "3x3s2_asym_b2_res": ((2, 6, 11, 13), (34, 6, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), False, True, "relu6"),
    "stem7x7s2_c3": ((1, 3, 13, 13), (16, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), True, False, "none"),
    "1x1_7x7map_res": ((1, 16, 7, 7), (32, 16, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, True, "gelu"),
    "dilation2": ((1, 12, 14, 10), (17, 12, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), True, True, "none"),
}
FORMATS = {"bsr16x4": [ConvParams("pix", 16, 1), ConvParams("chn", 5, 1)],
           "bsr4x4": [ConvParams("pix", 4, 3)], "bsr1x4": [ConvParams("pix", 1, 5)]}
RUNS = [(f, p) for f, ps in FORMATS.items() for p in ps]


def _run(case, fmt, p, act, sparsity=0.6, zero_rows=16):
    shape, wshape, stride, pad, dil, bias, res, activation = CASES[case]
    layer, x, r, ref = random_layer(shape, wshape, stride=stride, padding=pad, dilation=dil, bias=bias,
                                    residual=res, activation=activation, act=act, fmt=fmt, sparsity=sparsity,
                                    zero_rows=zero_rows)
    if layer.isa == "generic":
        pytest.skip("target without VNNI runs the dense generic kernel")
    assert layer.kernel == "sparse"
    if zero_rows:
        assert layer.bsr.indptr[1] == 0              # the first block row is empty
    assert_close(run_layer(layer, p, x, r, target()), ref, layer, x)


# every case in each format; bsr16x4 alternates its two formulations over the cases
STATIC_RUNS = [(c, f, p) for i, c in enumerate(CASES) for f, ps in FORMATS.items() for p in [ps[i % len(ps)]]]


@pytest.mark.parametrize("case,fmt,p", STATIC_RUNS, ids=[f"{c}-{f}-{p.kind}" for c, f, p in STATIC_RUNS])
def test_sparse_static(case, fmt, p):
    _run(case, fmt, p, STATIC)


@pytest.mark.parametrize("fmt,p", RUNS, ids=[f"{f}-{p.kind}" for f, p in RUNS])
def test_sparse_dynamic(fmt, p):
    _run("3x3s2_asym_b2_res", fmt, p, DYNAMIC)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_all_zero_weight(fmt):
    _run("3x3_relu", fmt, FORMATS[fmt][0], STATIC, sparsity=0.0, zero_rows=20)


@pytest.mark.parametrize("fmt,r", [("bsr16x4", 16), ("bsr4x4-int8", 4), ("bsr1x4", 1)])
def test_bsr_holds_exactly_the_nonzero_blocks(fmt, r):
    from spdy.runtime.int8.conv_blocks import block_mask_np, int8_conv_blocks
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (10, 6, 3, 3)).astype(np.int8)
    w = (w * block_mask_np(w, fmt, 0.7)).astype(np.int8)
    bsr = to_int8_bsr(w, fmt)
    words = int8_conv_blocks(w).view(np.int32)[..., 0]
    np.testing.assert_array_equal(bsr.todense(), words)
    nb, k4 = -(-10 // r), words.shape[1]
    pad = np.zeros((nb * r, k4), np.int32)
    pad[:10] = words
    assert bsr.nnzb == int(np.any(pad.reshape(nb, r, k4) != 0, axis=1).sum())
    assert bsr.r == r and len(bsr.indptr) == nb + 1


def test_block_offsets_follow_the_planes():
    """Block (tap, c4) reads the planes at c4 * SS*PS + the tap's offset."""
    from spdy.runtime.int8.conv_pack import QConvGeom
    from spdy.runtime.int8.sparse_conv import block_offsets
    g = QConvGeom(1, 8, 9, 9, 4, 3, 3, (2, 2), (1, 1, 1, 1))
    w = np.zeros((4, 8, 3, 3), np.int8)
    w[0, 5, 2, 1] = 1                     # channel 5 -> c4 = 1, tap 7
    bsr = to_int8_bsr(w, "bsr4x4")
    assert list(bsr.indices) == [7 * 2 + 1]
    assert list(block_offsets(bsr, g)) == [1 * g.ss * g.ps + g.tap_offset(7)]
