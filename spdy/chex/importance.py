"""Pluggable channel importance for a coupling group: `fn(model, group, k) -> scores[size]`.

The group's matrix and the CSS criterion live in spdy.passes.algo.group_scores (the channel
compile uses them too); L1 and random are the alternatives CHEX compares against.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from spdy.ir.groups import ChannelGroup
from spdy.passes.algo import css
from spdy.passes.algo.group_scores import css_importance, group_matrix  # noqa: F401  (spdy.chex API)

Importance = Callable[[nn.Module, ChannelGroup, int], torch.Tensor]


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
