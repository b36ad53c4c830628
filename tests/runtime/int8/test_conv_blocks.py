"""The sparse int8 conv block definition (numpy): K ordered (tap, channel), blocks of R outputs x
4 consecutive channels at one tap, masks by block L2 norm -- the same as spdy.formats'."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.runtime.int8.conv_blocks import block_mask_np, block_scores_np, int8_conv_blocks, int8_conv_matrix


def test_blocks_are_four_channels_at_one_tap():
    o, c, kh, kw = 3, 6, 2, 3                      # C4 = 2: channels 6, 7 are padding
    w = np.arange(o * c * kh * kw).reshape(o, c, kh, kw)
    b = int8_conv_blocks(w)
    assert b.shape == (o, kh * kw * 2, 4)
    for oo in range(o):
        for tap in range(kh * kw):
            i, j = divmod(tap, kw)
            np.testing.assert_array_equal(b[oo, tap * 2], w[oo, 0:4, i, j])
            np.testing.assert_array_equal(b[oo, tap * 2 + 1], [*w[oo, 4:6, i, j], 0, 0])


def test_matrix_of_2d_weight_is_column_groups():
    w = np.arange(12).reshape(2, 6)
    m = int8_conv_matrix(w)
    np.testing.assert_array_equal(m, np.concatenate([w, np.zeros((2, 2), w.dtype)], axis=1))


@pytest.mark.parametrize("fmt,r", [("bsr16x4", 16), ("bsr4x4", 4), ("bsr1x4-int8", 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 1.0])
def test_mask_prunes_the_weakest_blocks(fmt, r, sparsity):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 7, 3, 3)).astype(np.float32)
    mask = block_mask_np(w, fmt, sparsity)
    assert mask.shape == w.shape
    scores = block_scores_np(w, fmt)
    kept = block_scores_np(w * mask, fmt) > 0
    assert (~kept).sum() == round(sparsity * scores.size)
    if 0 < sparsity < 1:
        assert scores[kept].min() >= scores[~kept].max()
    # whole blocks: every entry of a kept block survives
    blocks = int8_conv_blocks(mask)
    nb = -(-20 // r)
    pad = np.zeros((nb * r,) + blocks.shape[1:], np.float32)
    pad[:20] = blocks
    per_block = pad.reshape(nb, r, -1, 4)
    real = int8_conv_blocks(np.ones_like(w))
    realpad = np.zeros_like(pad)
    realpad[:20] = real
    realpad = realpad.reshape(nb, r, -1, 4)
    assert np.all((per_block == realpad) | (per_block == 0))


@pytest.mark.parametrize("fmt", ["bsr16x4", "bsr4x4", "bsr1x4"])
@pytest.mark.parametrize("shape", [(20, 7, 3, 3), (33, 3, 7, 7), (8, 16, 1, 1), (12, 10)])
def test_mask_is_spdy_formats_definition(fmt, shape):
    from spdy import formats
    w = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(block_mask_np(w, fmt, 0.6), formats.magnitude_mask(w, f"{fmt}-int8", 0.6))


def test_unknown_format_names_the_known_ones():
    with pytest.raises(ValueError, match="bsr16x4"):
        block_mask_np(np.ones((4, 4, 1, 1)), "bsr16x1", 0.5)
