"""Block-sparse row (BSR) weights for the sparse kernels: masks and conversion, numpy only.

Why a separate file: the pruning side (masks by block L2 norm) and the kernel side (BSR arrays)
must agree on what a "block" is; both use these functions, and neither needs tvm.

A weight is a matrix W[N, K] (a Linear weight, or a conv weight reshaped to [O, C*KH*KW]).
Format "bsrRxC" groups R consecutive output rows and C consecutive input columns into one
block; a block is kept or pruned whole. Rows are zero-padded up to a multiple of R
(columns up to a multiple of C) so that the kernels never see a partial block.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spdy import formats as _formats

#: the built-in fp32 block-sparse formats these kernels implement (blocks of one input column)
FORMATS: dict[str, tuple[int, int]] = {f: _formats.block_shape(f) for f in _formats.SPARSE_FORMATS
                                       if not _formats.get(f).int8}


def _fp32_sparse() -> dict[str, tuple[int, int]]:
    """Every fp32 block-sparse format of the registry now (registered ones included)."""
    return {n: f.block for n, f in _formats.REGISTRY.items() if f.sparse and not f.int8}


def block_shape(fmt: str) -> tuple[int, int]:
    """(BR, BC) of an fp32 sparse format of the registry; a clear error names the known formats."""
    known = _fp32_sparse()
    if fmt not in known:
        raise ValueError(f"unknown fp32 sparse format {fmt!r}; known: {sorted(known)}")
    return known[fmt]


@dataclass(frozen=True)
class BSR:
    """W[N, K] as blocks: row block i holds data[indptr[i]:indptr[i+1]] at block columns indices[...]."""
    data: np.ndarray      # [nnzb, BR, BC] float32
    indices: np.ndarray   # [nnzb] int32, block-column index (column = index * BC + c)
    indptr: np.ndarray    # [NB + 1] int32, NB = ceil(N / BR)
    shape: tuple[int, int]  # (N, K) of the unpadded matrix
    block: tuple[int, int]  # (BR, BC)

    @property
    def nnzb(self) -> int:
        return int(self.indices.shape[0])

    @property
    def density(self) -> float:
        n, k = self.shape
        return self.nnzb * self.block[0] * self.block[1] / max(1, n * k)

    def todense(self) -> np.ndarray:
        """Back to W[N, K] (for tests and checks)."""
        br, bc = self.block
        n, k = self.shape
        nb, kb = -(-n // br), -(-k // bc)
        out = np.zeros((nb, br, kb, bc), np.float32)
        rows = np.repeat(np.arange(nb), np.diff(self.indptr))
        out[rows, :, self.indices, :] = self.data
        return out.reshape(nb * br, kb * bc)[:n, :k]


def _blocked(w: np.ndarray, br: int, bc: int) -> np.ndarray:
    """W[N, K] zero-padded and viewed as [NB, BR, KB, BC]."""
    n, k = w.shape
    nb, kb = -(-n // br), -(-k // bc)
    pad = np.zeros((nb * br, kb * bc), np.float32)
    pad[:n, :k] = w
    return pad.reshape(nb, br, kb, bc)


def block_norms(w: np.ndarray, fmt: str) -> np.ndarray:
    """L2 norm of every block, [NB, KB]: the magnitude criterion for block pruning."""
    w2 = np.asarray(w, np.float32).reshape(w.shape[0], -1)
    block_shape(fmt)
    return np.sqrt(_formats.block_scores(w2, fmt, w2.shape).numpy())


def magnitude_mask(w: np.ndarray, fmt: str, sparsity: float) -> np.ndarray:
    """0/1 mask of W's shape keeping the blocks with the largest L2 norm (spdy.formats'
    one definition; trailing axes of a conv weight are flattened into K)."""
    block_shape(fmt)
    return _formats.magnitude_mask(np.asarray(w, np.float32), fmt, sparsity)


def to_bsr(w: np.ndarray, fmt: str) -> BSR:
    """BSR of the nonzero blocks of W ([N, K] or [N, ...] flattened): a block with any nonzero is kept."""
    w2 = np.asarray(w, np.float32).reshape(w.shape[0], -1)
    br, bc = block_shape(fmt)
    b = _blocked(w2, br, bc)                               # [NB, BR, KB, BC]
    nz = np.any(b != 0, axis=(1, 3))                       # [NB, KB]
    rows, cols = np.nonzero(nz)                            # row-major: sorted by row then col
    data = np.ascontiguousarray(b[rows, :, cols, :], dtype=np.float32).reshape(-1, br, bc)
    indptr = np.zeros(nz.shape[0] + 1, np.int32)
    indptr[1:] = np.cumsum(nz.sum(axis=1))
    return BSR(data, cols.astype(np.int32), indptr, (w2.shape[0], w2.shape[1]), (br, bc))


def prune_to_bsr(w: np.ndarray, fmt: str, sparsity: float) -> BSR:
    """Magnitude-mask W at a sparsity, then convert (for benches and tests)."""
    return to_bsr(np.asarray(w, np.float32) * magnitude_mask(w, fmt, sparsity), fmt)
