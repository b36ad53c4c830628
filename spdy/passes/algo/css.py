"""Channel scores on a weight matrix whose columns are channels (CHEX, CVPR'22).

Pure tensor functions so the CHEX training loop, the channel-surgery pass and the tests
share one definition. `W` is [features, channels]: column j holds everything channel j
contributes (its filter(s) flattened), as in CHEX Algorithm 2.
"""
from __future__ import annotations

import torch


def leverage_scores(W: torch.Tensor, k: int) -> torch.Tensor:
    """CSS leverage scores: psi_j = ||V_k[j, :]||^2 with V_k the top-k right singular vectors.

    Channels whose columns are needed to span W's top-k subspace score high. When k reaches
    W's rank every column spans equally well in that sense, so (like the official code) we
    fall back to the L1 norm, which still prefers the larger channels.
    """
    W = W.detach().double()
    f, c = W.shape
    if k >= min(f, c):
        return l1_scores(W)
    _, _, vh = torch.linalg.svd(W, full_matrices=False)  # vh: [min(f, c), c]
    return (vh[:k] ** 2).sum(dim=0).float()


def l1_scores(W: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """L1 norm of each channel's column (Li et al., 2017)."""
    return W.detach().abs().sum(dim=0).float()


def random_scores(W: torch.Tensor, k: int | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform random scores: the baseline any criterion must beat."""
    return torch.rand(W.shape[1], generator=generator)


def projection_residuals(W: torch.Tensor, kept: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """CHEX eq. (2): ||w_j - W_T (W_T^T W_T)^+ W_T^T w_j||^2 for each candidate column j.

    A large residual means channel j is poorly explained by the kept ones, so regrowing it
    adds the most new directions.
    """
    W = W.detach().double()
    cand = W[:, candidates]
    if len(kept) == 0:
        return (cand ** 2).sum(dim=0).float()
    base = W[:, kept]
    coef = torch.linalg.pinv(base.T @ base) @ (base.T @ cand)
    return ((cand - base @ coef) ** 2).sum(dim=0).float()


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, sorted ascending (ties broken by lower index)."""
    order = torch.argsort(-scores, stable=True)[:k]
    return torch.sort(order).values
