"""User-facing channel pruning: `prune_channels(model, keep, example_inputs)` and `replay`.

Keys of `keep` may be group ids or layer qualnames (a layer names the group it produces,
or failing that the group holding its BN/LayerNorm/depthwise channels), so users need not
look group ids up first.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch.nn as nn

from spdy.ir.groups import ChannelGroup, channel_groups
from spdy.passes.algo.surgery import ChannelSurgeryError, History, apply_history, history_from_keep

_KIND_PRIORITY = ("out", "dw", "bn", "ln")


def resolve_group(groups: Sequence[ChannelGroup], key: int | str) -> ChannelGroup:
    """The group a `keep` key refers to: an id, or a layer qualname."""
    if isinstance(key, int):
        for g in groups:
            if g.id == key:
                return g
        raise ChannelSurgeryError(f"no channel group with id {key}")
    for kind in _KIND_PRIORITY:
        found = [g for g in groups if g.member(key, kind) is not None]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ChannelSurgeryError(
                f"layer {key!r} produces channels of several groups {[g.id for g in found]}; "
                "use group ids")
    raise ChannelSurgeryError(f"layer {key!r} produces no channel group")


def prune_channels(model: nn.Module, keep: dict[int | str, Iterable[int]], example_inputs: Any = None,
                   *, groups: Sequence[ChannelGroup] | None = None) -> tuple[nn.Module, History]:
    """Return (a smaller copy of `model` keeping only `keep`'s channels, the JSON history).

    Either `example_inputs` (to trace the model for its coupling groups) or precomputed
    `groups` is needed. The input model is left untouched.
    """
    if groups is None:
        if example_inputs is None:
            raise ChannelSurgeryError("prune_channels needs example_inputs (or groups) to find coupled channels")
        groups = channel_groups(model, example_inputs)
    by_id: dict[int, list[int]] = {}
    for key, idx in keep.items():
        g = resolve_group(groups, key)
        if g.id in by_id:
            raise ChannelSurgeryError(f"group {g.id} ({g.name}) is named twice in keep")
        by_id[g.id] = list(idx)
    history = history_from_keep(model, groups, by_id)
    return apply_history(model, history), history


def replay(model: nn.Module, history: History | str | Path) -> nn.Module:
    """Apply a stored history (a list or a JSON file path) to a fresh model; returns a copy."""
    if isinstance(history, (str, Path)):
        history = json.loads(Path(history).read_text())
    return apply_history(model, history)


def save_history(history: History, path: str | Path) -> None:
    Path(path).write_text(json.dumps(history))
