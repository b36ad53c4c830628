"""Per-thread work lists: complete, disjoint, balanced."""
import numpy as np
import pytest

from spdy.runtime.sparse.balance import work_list


def _covered(items, nrows, tiles):
    wrow, wt0, wt1, wptr = items
    seen = np.zeros((nrows, tiles), int)
    for r, a, b in zip(wrow, wt0, wt1):
        seen[r, a:b] += 1
    return seen


@pytest.mark.parametrize("tiles,parts", [(1, 1), (1, 2), (3, 2), (8, 3), (5, 4), (2, 7)])
def test_every_unit_once(tiles, parts):
    rng = np.random.default_rng(tiles * 10 + parts)
    nnz = rng.integers(0, 30, size=9)
    indptr = np.concatenate([[0], np.cumsum(nnz)])
    items = work_list(indptr, tiles, parts)
    assert len(items[3]) == parts + 1 and items[3][-1] == len(items[0])
    assert np.all(_covered(items, 9, tiles) == 1)


def test_balance_uneven_rows():
    indptr = np.concatenate([[0], np.cumsum([100, 0, 0, 1, 1, 1, 1, 96])])
    for tiles in (1, 16):
        wrow, wt0, wt1, wptr = work_list(indptr, tiles, 2)
        unit = np.diff(indptr) + 2.0
        loads = [float((unit[wrow[a:b]] * (wt1[a:b] - wt0[a:b])).sum()) for a, b in zip(wptr[:-1], wptr[1:])]
        assert max(loads) <= 1.1 * sum(loads) / 2


def test_empty_matrix():
    wrow, wt0, wt1, wptr = work_list(np.array([0, 0, 0]), 2, 2)
    assert np.all(_covered((wrow, wt0, wt1, wptr), 2, 2) == 1)
