"""Pluggable channel importance for a coupling group: `fn(model, group, k) -> scores[size]`.

A group's channel j may be produced by several layers (all convs feeding a residual add),
so its column in the CSS matrix is every producer's filter j flattened and stacked. Only
producers ("out"/"dw" members) count, as in the official CHEX code.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from spdy.ir.groups import ChannelGroup
from spdy.passes.algo import css

Importance = Callable[[nn.Module, ChannelGroup, int], torch.Tensor]


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
    return css.leverage_scores(group_matrix(model, group), k)


def l1_importance(model: nn.Module, group: ChannelGroup, k: int) -> torch.Tensor:
    return css.l1_scores(group_matrix(model, group))


def random_importance(seed: int = 0) -> Importance:
    """A seeded random criterion (a closure so repeated calls draw fresh but reproducible scores)."""
    gen = torch.Generator().manual_seed(seed)

    def fn(model: nn.Module, group: ChannelGroup, k: int) -> torch.Tensor:
        return torch.rand(group.size, generator=gen)

    return fn


def get_importance(name_or_fn: str | Importance, seed: int = 0) -> Importance:
    if callable(name_or_fn):
        return name_or_fn
    table = {"css": lambda: css_importance, "l1": lambda: l1_importance,
             "random": lambda: random_importance(seed)}
    if name_or_fn not in table:
        raise ValueError(f"unknown importance {name_or_fn!r}; use one of {sorted(table)} or a callable")
    return table[name_or_fn]()
