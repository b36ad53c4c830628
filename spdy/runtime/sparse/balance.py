"""Static load balancing of a block-sparse GEMM across threads (numpy only).

Why: TVM's `T.parallel` hands every thread one contiguous chunk of the loop, and block rows
of a pruned weight hold very different numbers of nonzero blocks (magnitude pruning keeps
the strong output channels dense and empties weak ones). Splitting by row count leaves
one thread with most of the work. Instead the kernel runs `parts` parallel iterations, and
part p walks its own list of work items `(block row, first tile, end tile)`; the list is
cut so that every part gets about the same cost, splitting a row's tiles across parts when
needed. Cost of one (row, tile) = nnz blocks in the row + `overhead` (init and store).
"""
from __future__ import annotations

import numpy as np


def _contiguous(indptr: np.ndarray, tiles: int, parts: int, overhead: float = 2.0):
    """Cut the row-major sequence of (row, tile) units at equal cost (splits rows by tiles)."""
    unit = np.diff(np.asarray(indptr, np.int64)).astype(np.float64) + overhead
    nrows, parts = unit.shape[0], max(1, int(parts))
    row_end = np.cumsum(unit * tiles)
    row_start = row_end - unit * tiles
    total = float(row_end[-1]) if nrows else 0.0
    cuts = [0]                                     # flat (row * tiles + tile) index per part start
    for p in range(1, parts):
        goal = total * p / parts
        r = min(int(np.searchsorted(row_end, goal, side="left")), nrows - 1)
        t = int(round((goal - row_start[r]) / unit[r]))
        cuts.append(max(cuts[-1], r * tiles + min(max(t, 0), tiles)))
    cuts.append(nrows * tiles)
    wrow, wt0, wt1, wptr = [], [], [], [0]
    for p in range(parts):
        f, end = cuts[p], cuts[p + 1]
        while f < end:
            r, t = divmod(f, tiles)
            stop = min(end, (r + 1) * tiles)
            wrow.append(r)
            wt0.append(t)
            wt1.append(t + stop - f)
            f = stop
        wptr.append(len(wrow))
    return wrow, wt0, wt1, wptr


def _whole_rows(indptr, tiles: int, parts: int, overhead: float):
    """Longest-processing-time-first: whole rows to the least loaded part (rows stay unsplit)."""
    unit = np.diff(np.asarray(indptr, np.int64)).astype(np.float64) + overhead
    load = [0.0] * parts
    bins: list[list[int]] = [[] for _ in range(parts)]
    for r in np.argsort(-unit, kind="stable"):
        p = int(np.argmin(load))
        bins[p].append(int(r))
        load[p] += unit[r] * tiles
    wrow, wptr = [], [0]
    for b in bins:
        wrow += sorted(b)
        wptr.append(len(wrow))
    return wrow, [0] * len(wrow), [tiles] * len(wrow), wptr


def _max_load(items, indptr, overhead):
    wrow, wt0, wt1, wptr = items
    unit = np.diff(np.asarray(indptr, np.int64)) + overhead
    cost = unit[np.asarray(wrow, np.int64)] * (np.asarray(wt1) - np.asarray(wt0))
    return max(float(cost[wptr[p]:wptr[p + 1]].sum()) for p in range(len(wptr) - 1))


def work_list(indptr: np.ndarray, tiles: int, parts: int, overhead: float = 2.0):
    """Work items for `parts` threads: (wrow, wt0, wt1, wptr) int32 arrays.

    Part p processes items wptr[p]..wptr[p+1]-1; item w covers block row wrow[w] and tiles
    [wt0[w], wt1[w]). Every (row, tile) appears exactly once. Two plans are made, cutting
    the row-major sequence at equal cost (good when there are many tiles) and whole rows by
    LPT (needed when there is one tile, e.g. a batch-1 Linear); the one whose most loaded
    part is lighter wins (ties: the contiguous one, which reads memory in order).
    """
    parts = max(1, int(parts))
    a = _contiguous(indptr, tiles, parts, overhead)
    b = _whole_rows(indptr, tiles, parts, overhead)
    best = b if _max_load(b, indptr, overhead) < _max_load(a, indptr, overhead) else a
    return tuple(np.asarray(x, np.int32) for x in best)
