"""Magnitude masks at a given sparsity, unstructured or in blocks of BR output rows x BC inputs.

Used to compile a user-given profile without calibration data: the weights with the smallest
magnitude (blocks with the smallest L2 norm) are pruned; exactly round(sparsity * blocks)
blocks go, ties broken by position so the result is deterministic.
"""
from __future__ import annotations

import torch


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """[O, ...] -> [O, prod(...)]: convs are pruned as their im2col GEMM matrix."""
    return weight.reshape(weight.shape[0], -1)


def block_scores(matrix: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """Squared L2 norm of each (BR x BC) block; partial blocks at the edges are padded with 0."""
    br, bc = block
    o, k = matrix.shape
    po, pk = -o % br, -k % bc
    m = torch.nn.functional.pad(matrix.float() ** 2, (0, pk, 0, po))
    return m.reshape((o + po) // br, br, (k + pk) // bc, bc).sum(dim=(1, 3))


def expand_blocks(keep: torch.Tensor, block: tuple[int, int], shape: tuple[int, int]) -> torch.Tensor:
    br, bc = block
    full = keep.repeat_interleave(br, 0).repeat_interleave(bc, 1)
    return full[: shape[0], : shape[1]]


def magnitude_mask(weight: torch.Tensor, sparsity: float, block: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """A 0/1 mask of weight's shape pruning `sparsity` of the blocks with the smallest norm."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    mat = as_matrix(weight)
    scores = block_scores(mat, block)
    n = scores.numel()
    n_prune = int(round(sparsity * n))
    keep = torch.ones(n, dtype=torch.bool)
    if n_prune > 0:
        order = torch.argsort(scores.flatten(), stable=True)
        keep[order[:n_prune]] = False
    mask = expand_blocks(keep.reshape(scores.shape), block, tuple(mat.shape))
    return mask.reshape(weight.shape).to(weight.dtype)
