"""Channel scores of a coupling group: its producers' filters as one matrix, scored by CSS.

A group's channel j may be produced by several layers (all convs feeding a residual add),
so its column in the CSS matrix is every producer's filter j flattened and stacked. Only
producers ("out"/"dw" members) count, as in the official CHEX code. Here, not in spdy.chex,
because the channel compile's passes choose channels this way too, and passes do not import
the CHEX training package (spdy.chex builds its pluggable importances on these).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from spdy.ir.groups import ChannelGroup
from spdy.passes.algo import css


def group_matrix(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """[features, channels] matrix of the group's producer weights (channels as columns)."""
    modules = dict(model.named_modules())
    cols = []
    for m in group.members:
        if m.kind not in ("out", "dw"):
            continue
        w = modules[m.qualname].weight.detach()
        w = w[m.offset:m.offset + group.size]
        cols.append(w.reshape(group.size, -1).T)
    if not cols:
        raise ValueError(f"group {group.id} ({group.name}) has no producing layer to score")
    return torch.cat(cols, dim=0)


def css_importance(model: nn.Module, group: ChannelGroup, k: int) -> torch.Tensor:
    """CSS leverage scores of the group's channels for keeping k (CHEX Algorithm 2)."""
    return css.leverage_scores(group_matrix(model, group), k)
