"""One CHEX prune-and-regrow step over coupling groups (Algorithm 1, lines 7-10).

1. Re-allocate: rank the batch-norm |gamma| of all prunable channels globally and keep the
   top (1 - S) share; each group keeps as many as it has above the threshold (a channel of a
   group with several BNs scores the mean of its |gamma|s). Groups without BN keep (1 - S) of
   their channels. The first step, when gammas carry no signal yet, is uniform.
2. Prune inside each group by the importance criterion (CSS leverage scores by default).
3. Regrow delta_t * size channels, drawn without replacement with probability proportional
   to their orthogonal-projection residual onto the kept channels (eq. 2); the official code
   uses a softmax of the residual norms, which is near-uniform at typical weight scales.
4. Restore MRU values of inactive channels, snapshot, then mask.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from spdy.chex.importance import Importance, group_matrix
from spdy.chex.masks import GroupMasks
from spdy.ir.groups import ChannelGroup
from spdy.passes.algo import css


def regrow_factor(step: int, n_steps: int, delta0: float) -> float:
    """Cosine-decayed regrowth share: 0.5 * (1 + cos(pi * step / n_steps)) * delta0."""
    if n_steps <= 0:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, n_steps) / n_steps)) * delta0


def _min_keep(g: ChannelGroup, min_keep_ratio: float) -> int:
    return max(1, math.ceil(min_keep_ratio * g.size))


def _gamma(modules: dict, g: ChannelGroup) -> torch.Tensor | None:
    vals = [modules[m.qualname].weight.detach().abs()[m.offset:m.offset + g.size]
            for m in g.members if m.kind == "bn" and modules[m.qualname].weight is not None]
    return torch.stack(vals).mean(dim=0) if vals else None


def allocate(model: nn.Module, groups: list[ChannelGroup], sparsity: float, *, uniform: bool,
             min_keep_ratio: float = 0.05) -> dict[int, int]:
    """Kept channel count per group for channel sparsity `sparsity`."""
    counts = {g.id: max(_min_keep(g, min_keep_ratio), round((1 - sparsity) * g.size)) for g in groups}
    if uniform:
        return counts
    modules = dict(model.named_modules())
    scored = [(g, _gamma(modules, g)) for g in groups]
    scored = [(g, s) for g, s in scored if s is not None]
    if not scored:
        return counts
    allg = torch.cat([s for _, s in scored])
    n_keep = round((1 - sparsity) * len(allg))
    if n_keep <= 0:
        return counts
    thresh = torch.sort(allg, descending=True).values[n_keep - 1]
    for g, s in scored:
        counts[g.id] = max(_min_keep(g, min_keep_ratio), int((s >= thresh).sum()))
    return counts


def _sample(weights: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    w = weights.clamp_min(0).double()
    if not torch.isfinite(w).all() or w.sum() <= 0:
        w = torch.ones_like(w)
    w = w + 1e-12 * w.sum()  # multinomial without replacement needs n positive entries
    return torch.multinomial(w, n, replacement=False, generator=gen)


def explore_step(model: nn.Module, masks: GroupMasks, importance: Importance, sparsity: float,
                 delta: float, *, uniform: bool, gen: torch.Generator,
                 min_keep_ratio: float = 0.05) -> dict:
    """Run one prune-regrow step in place; returns per-group kept/regrown counts for the log."""
    groups = masks.groups
    counts = allocate(model, groups, sparsity, uniform=uniform, min_keep_ratio=min_keep_ratio)
    kept = {}
    for g in groups:
        k = min(counts[g.id], g.size)
        kept[g.id] = css.top_k(importance(model, g, k), k)
    masks.restore_inactive()
    regrown = {}
    for g in groups:
        T = kept[g.id]
        rest = torch.tensor(sorted(set(range(g.size)) - set(T.tolist())), dtype=torch.long)
        r = min(int(math.floor(delta * g.size)), len(rest))
        R = torch.empty(0, dtype=torch.long)
        if r > 0:
            eps = css.projection_residuals(group_matrix(model, g), T, rest)
            R = rest[_sample(eps, r, gen)]
        regrown[g.id] = R
    masks.snapshot()
    for g in groups:
        masks.set_active(g.id, torch.cat([kept[g.id], regrown[g.id]]))
    masks.apply()
    return {"kept": {g.name: len(kept[g.id]) for g in groups},
            "regrown": {g.name: len(regrown[g.id]) for g in groups},
            "active": {g.name: int(masks.active[g.id].sum()) for g in groups}}
