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
from spdy.passes.algo.surgery import ChannelSurgeryError, History, apply_history, history_from_keep, resolve_group


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
