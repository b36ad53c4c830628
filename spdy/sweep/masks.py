"""Weight masks kept as module buffers, and the pruning criteria that shrink them.

Each prunable module gets a `weight_mask` buffer (same shape as its weight, float 0/1), so
masks travel with state_dict. A pruning step only ever turns 1s into 0s: scores of already
pruned weights are set to +inf before selecting the lowest, so they cannot be chosen, and
the new mask is the old mask times the selection. The number removed is exact:
round(fraction * kept), over all prunable weights (global criteria) or per layer
(magnitude-layer).
"""
from __future__ import annotations

import torch
from torch import nn

MASK = "weight_mask"


def attach_masks(modules: dict[str, nn.Module]) -> None:
    for m in modules.values():
        if not hasattr(m, MASK):
            m.register_buffer(MASK, torch.ones_like(m.weight))


def get_masks(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {n: getattr(m, MASK) for n, m in modules.items()}


@torch.no_grad()
def apply_masks(modules: dict[str, nn.Module]) -> None:
    """Zero pruned weights (after init, rewind, and every optimizer step)."""
    for m in modules.values():
        m.weight.mul_(getattr(m, MASK))


def mask_grads(modules: dict[str, nn.Module]) -> None:
    """Zero gradients of pruned weights so momentum/weight decay cannot revive them."""
    for m in modules.values():
        if m.weight.grad is not None:
            m.weight.grad.mul_(getattr(m, MASK))


def _remove_lowest(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """New flat mask with the k lowest-scoring kept entries removed."""
    s = scores.clone().double()
    s[mask == 0] = float("inf")
    new = mask.clone()
    if k > 0:
        # stable sort makes ties deterministic (lowest index first)
        order = torch.sort(s, stable=True).indices[:k]
        new[order] = 0
    return new


def scores_for(criterion: str, modules: dict[str, nn.Module],
               grads: dict[str, torch.Tensor] | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
    if criterion.startswith("magnitude"):
        return {n: m.weight.detach().abs() for n, m in modules.items()}
    if criterion == "gradient":
        assert grads is not None
        return {n: (m.weight.detach() * grads[n]).abs() for n, m in modules.items()}
    if criterion == "random":
        return {n: torch.rand(m.weight.shape, generator=gen) for n, m in modules.items()}
    raise ValueError(f"unknown criterion {criterion!r}")


@torch.no_grad()
def prune_step(modules: dict[str, nn.Module], scores: dict[str, torch.Tensor],
               fraction: float, per_layer: bool) -> dict[str, int]:
    """Shrink each module's mask in place; return the number removed per layer."""
    masks = get_masks(modules)
    removed: dict[str, int] = {}
    if per_layer:
        for n, mask in masks.items():
            flat = mask.flatten()
            k = int(round(fraction * int(flat.sum().item())))
            new = _remove_lowest(scores[n].flatten(), flat, k)
            removed[n] = k
            mask.copy_(new.view_as(mask))
    else:
        names = list(masks)
        flat_mask = torch.cat([masks[n].flatten() for n in names])
        flat_scores = torch.cat([scores[n].flatten().double() for n in names])
        k = int(round(fraction * int(flat_mask.sum().item())))
        new = _remove_lowest(flat_scores, flat_mask, k)
        off = 0
        for n in names:
            size = masks[n].numel()
            part = new[off:off + size].view_as(masks[n])
            removed[n] = int((masks[n].sum() - part.sum()).item())
            masks[n].copy_(part)
            off += size
    apply_masks(modules)
    return removed
