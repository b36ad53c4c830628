"""One-shot structured pruning at a channel sparsity: `prune_by_sparsity(model, x, 0.5)`.

Per group (or per group named by id / layer qualname), keep round((1 - s) * size) channels
(at least one), chosen by an importance criterion (CSS leverage scores by default), and cut
them out with channel surgery. Optionally re-fit the layers that read the pruned channels by
least squares on calibration inputs (spdy.passes.algo.channel_recon). No training; the
CHEX training loop is spdy.chex.train.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from spdy.chex.importance import get_importance
from spdy.ir.groups import channel_groups
from spdy.passes.algo.css import top_k
from spdy.passes.algo.surgery import ChannelSurgeryError, History, apply_history, history_from_keep, resolve_group


def _check(s, where: str) -> float:
    try:
        s = float(s)
    except (TypeError, ValueError):
        raise ChannelSurgeryError(f"{where}: channel sparsity must be a number in [0, 1), got {s!r}") from None
    if not 0.0 <= s < 1.0:
        raise ChannelSurgeryError(f"{where}: channel sparsity must lie in [0, 1), got {s}")
    return s


@torch.no_grad()
def prune_by_sparsity(model: nn.Module, example_inputs: Any, sparsity: float | dict, *, importance="css",
                      calib: Iterable | None = None, seed: int = 0) -> tuple[nn.Module, History]:
    """(smaller copy of `model`, JSON history). `sparsity`: one float for every prunable group,
    or {group id or layer qualname: float} for some groups (the others stay full)."""
    groups = channel_groups(model, example_inputs)
    if isinstance(sparsity, dict):
        per = {}
        for key, s in sparsity.items():
            g = resolve_group(groups, key)
            per[g.id] = _check(s, f"group {g.id} ({g.name})")
            if per[g.id] > 0 and not g.prunable:
                raise ChannelSurgeryError(f"group {g.id} ({g.name}) is not prunable: {g.reason}")
    else:
        s = _check(sparsity, "all groups")
        per = {g.id: s for g in groups if g.prunable}
    imp = get_importance(importance, seed)
    by_id = {g.id: g for g in groups}
    keep = {}
    for gid, s in per.items():
        g = by_id[gid]
        k = max(1, int(round((1.0 - s) * g.size)))
        if k < g.size:
            keep[gid] = top_k(imp(model, g, k), k).tolist()
    history = history_from_keep(model, groups, keep)
    pruned = apply_history(model, history)
    if calib is not None and history:
        from spdy.passes.algo.channel_recon import collect_grams, refit_consumers
        batches = list(calib)
        consumers = sorted({q for q, dim, _ in history if dim == 1})
        grams = collect_grams(model, consumers, batches)
        refit_consumers(pruned, model, history, grams)
    return pruned, history
