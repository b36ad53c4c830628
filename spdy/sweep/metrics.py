"""Per-level measurements that are not plain accuracy: sparsity and learning distance."""
from __future__ import annotations

import math

import torch


def learning_distance(start: dict[str, torch.Tensor], learned: dict[str, torch.Tensor],
                      masks: dict[str, torch.Tensor]) -> float:
    """||w_start - w_learned||_2 over kept weights only (the paper's D(w_init, w_learned)).

    Pruned weights are excluded explicitly through the mask, not by trusting that both
    tensors hold zeros there, so the value stays right even if a caller passes unmasked
    start weights (e.g. the dense init used for rewinding).
    """
    total = 0.0
    for n, m in masks.items():
        d = (start[n].double() - learned[n].double()) * m.double()
        total += float((d * d).sum())
    return math.sqrt(total)


def sparsity(masks: dict[str, torch.Tensor]) -> tuple[float, int, int]:
    """(fraction pruned, kept, total) over all prunable weights."""
    kept = sum(int(m.sum().item()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return 1.0 - kept / total, kept, total
