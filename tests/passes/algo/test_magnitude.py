import pytest
import torch

from spdy.passes.algo.magnitude import block_scores, magnitude_mask


@pytest.mark.parametrize("block", [(1, 1), (4, 1), (16, 1)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
def test_exact_block_counts(block, sparsity):
    w = torch.randn(48, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    m = magnitude_mask(w, sparsity, block)
    assert m.shape == w.shape
    blocks = m.reshape(48 // block[0], block[0], 27)
    assert ((blocks.sum(1) == 0) | (blocks.sum(1) == block[0])).all()  # whole blocks only
    n_blocks = (48 // block[0]) * 27
    assert int((blocks.sum(1) == 0).sum()) == round(sparsity * n_blocks)


def test_keeps_largest_blocks():
    w = torch.zeros(4, 4)
    w[2:, 1] = 5.0
    w[:2, 3] = 1.0
    m = magnitude_mask(w, 0.75, (2, 1))
    assert m[2:, 1].all() and m.sum() == 4 + 0 or m[:2, 3].all()
    assert block_scores(w, (2, 1))[1, 1] == 50.0


def test_uneven_rows_are_padded():
    w = torch.randn(10, 5)
    m = magnitude_mask(w, 0.5, (4, 1))
    assert m.shape == (10, 5)
