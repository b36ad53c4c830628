"""BSR conversion and block magnitude masks (numpy only)."""
import numpy as np
import pytest

from spdy.runtime.sparse.bsr import FORMATS, block_norms, block_shape, magnitude_mask, prune_to_bsr, to_bsr


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("shape", [(37, 29), (16, 8), (1, 5), (40, 3, 3, 3)])
def test_roundtrip(fmt, shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape).astype("float32")
    masked = w * magnitude_mask(w, fmt, 0.6)
    b = to_bsr(masked, fmt)
    np.testing.assert_array_equal(b.todense(), masked.reshape(shape[0], -1))
    br, bc = block_shape(fmt)
    assert b.data.shape == (b.nnzb, br, bc)
    assert b.indptr[0] == 0 and b.indptr[-1] == b.nnzb
    assert np.all(np.diff(b.indptr) >= 0)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99, 1.0])
def test_mask_sparsity_and_blocks(fmt, sparsity):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 48)).astype("float32")
    m = magnitude_mask(w, fmt, sparsity)
    br, bc = block_shape(fmt)
    nblocks = (64 // br) * (48 // bc)
    kept = int(m.sum()) // (br * bc)
    assert kept == nblocks - int(round(sparsity * nblocks))
    # whole blocks are kept or dropped
    blocks = m.reshape(64 // br, br, 48 // bc, bc)
    assert np.all(blocks.min(axis=(1, 3)) == blocks.max(axis=(1, 3)))


def test_mask_keeps_largest_blocks():
    w = np.zeros((32, 4), np.float32)
    w[:16, 0] = 5.0      # strong block
    w[16:, 1] = 0.1      # weak block
    m = magnitude_mask(w, "bsr16x1", 0.75)   # 8 blocks, keep 2: the two nonzero ones
    assert m[:16, 0].all() and m[16:, 1].all() and m.sum() == 32
    assert block_norms(w, "bsr16x1")[0, 0] == pytest.approx(20.0)


def test_empty_rows_and_unknown_format():
    w = np.zeros((20, 6), np.float32)
    w[0, 1] = 1.0
    b = to_bsr(w, "bsr4x1")
    assert b.nnzb == 1 and list(np.diff(b.indptr)) == [1, 0, 0, 0, 0]
    assert to_bsr(np.zeros((4, 4), np.float32), "bsr1x1").nnzb == 0
    with pytest.raises(ValueError, match="bsr16x1"):
        block_shape("bsr8x8")
    assert prune_to_bsr(w, "bsr1x1", 0.0).nnzb == 1
