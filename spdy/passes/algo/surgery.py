"""Channel surgery: make layers physically smaller by keeping only chosen channels.

Masking channels saves no time; only smaller dense layers do. The decisions are a plain JSON
history of ``[qualname, dim, kept_indices]`` entries (dim 0: output channels / per-channel
vectors, dim 1: input channels or Linear in-features) so they can be stored with an
artifact and replayed on a fresh copy of the model without re-tracing it. Pure functions on
modules and lists; the `channel-surgery` pass and `spdy.chex.prune_channels` wrap them.
"""
from __future__ import annotations

import copy
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from spdy.errors import SpdyError
from spdy.ir.groups import KIND_DIM, ChannelGroup

History = list  # [[qualname: str, dim: int, kept: list[int]], ...]


class ChannelSurgeryError(SpdyError, ValueError):
    """A pruning request that cannot be applied; the message names the group or layer."""


_KIND_PRIORITY = ("out", "dw", "bn", "ln")


def resolve_group(groups: Sequence[ChannelGroup], key: int | str) -> ChannelGroup:
    """The group a `keep` key refers to: an id, or a layer qualname (the group it produces, or
    failing that the one holding its BN/LayerNorm/depthwise channels)."""
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


def dim_size(module: nn.Module, dim: int) -> int:
    """How many channels `module` has along the history dimension `dim`."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[0]
    if isinstance(module, nn.Linear):
        return module.weight.shape[dim]
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels if dim == 0 else module.in_channels
    raise ChannelSurgeryError(f"cannot prune channels of {type(module).__name__}")


def _take(t: torch.Tensor | None, dim: int, idx: torch.Tensor):
    if t is None:
        return None
    out = t.detach().index_select(dim, idx).clone()
    if isinstance(t, nn.Parameter):
        return nn.Parameter(out, requires_grad=t.requires_grad)
    return out


def slice_module(module: nn.Module, dim: int, keep: Sequence[int], qualname: str = "?") -> None:
    """Keep only channels `keep` of `module` along `dim`, in place (new Parameter objects)."""
    idx = torch.as_tensor(list(keep), dtype=torch.long)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and dim == 0:
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(module, name)
            if t is not None:
                setattr(module, name, _take(t, 0, idx))
        module.num_features = len(idx)
    elif isinstance(module, nn.LayerNorm) and dim == 0:
        module.weight = _take(module.weight, 0, idx)
        module.bias = _take(module.bias, 0, idx)
        module.normalized_shape = (len(idx),)
    elif isinstance(module, nn.Linear):
        module.weight = _take(module.weight, dim, idx)
        if dim == 0:
            module.bias = _take(module.bias, 0, idx)
            module.out_features = len(idx)
        else:
            module.in_features = len(idx)
    elif isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        g = module.groups
        depthwise = g > 1 and g == module.in_channels == module.out_channels
        if g > 1 and not depthwise:
            raise ChannelSurgeryError(f"{qualname}: grouped conv (groups={g}) cannot be pruned")
        if depthwise and dim == 1:
            raise ChannelSurgeryError(f"{qualname}: depthwise conv is pruned on dim 0 only")
        module.weight = _take(module.weight, dim, idx)
        if dim == 0:
            module.bias = _take(module.bias, 0, idx)
            module.out_channels = len(idx)
            if depthwise:
                module.in_channels = module.groups = len(idx)
        else:
            module.in_channels = len(idx)
    else:
        raise ChannelSurgeryError(f"{qualname}: cannot prune dim {dim} of {type(module).__name__}")


def history_from_keep(model: nn.Module, groups: Sequence[ChannelGroup],
                      keep: dict[int, Iterable[int]]) -> History:
    """Translate {group id: kept channel indices} into per-layer history entries.

    A layer dimension shared by several groups (a conv reading a concat) keeps the union of
    what each group keeps; entries that keep everything are left out.
    """
    by_id = {g.id: g for g in groups}
    removed: dict[tuple[str, int], set] = {}
    for gid, kept in keep.items():
        g = by_id.get(gid)
        if g is None:
            raise ChannelSurgeryError(f"no channel group with id {gid!r}")
        kept = np.unique(np.asarray(list(kept), dtype=np.int64))
        if len(kept) == 0:
            raise ChannelSurgeryError(
                f"group {g.id} ({g.name}): cannot prune all {g.size} channels; keep at least one")
        if kept[0] < 0 or kept[-1] >= g.size:
            raise ChannelSurgeryError(
                f"group {g.id} ({g.name}): kept indices must lie in [0, {g.size}), got {kept.tolist()}")
        if len(kept) == g.size:
            continue
        if not g.prunable:
            raise ChannelSurgeryError(f"group {g.id} ({g.name}) is not prunable: {g.reason}")
        dropped = np.setdiff1d(np.arange(g.size), kept)
        for m in g.members:
            removed.setdefault((m.qualname, KIND_DIM[m.kind]), set()).update(m.indices(dropped).tolist())
    modules = dict(model.named_modules())
    history = []
    for (q, dim), gone in removed.items():
        n = dim_size(modules[q], dim)
        history.append([q, dim, [i for i in range(n) if i not in gone]])
    return history


def apply_history(model: nn.Module, history: History, *, inplace: bool = False) -> nn.Module:
    """Replay history entries on `model` (a deep copy unless inplace)."""
    if not inplace:
        model = copy.deepcopy(model)
    modules = dict(model.named_modules())
    for entry in history:
        q, dim, kept = entry
        if q not in modules:
            raise ChannelSurgeryError(f"history names layer {q!r}, which the model does not have")
        n = dim_size(modules[q], dim)
        if not kept or min(kept) < 0 or max(kept) >= n:
            raise ChannelSurgeryError(f"{q} dim {dim}: kept indices must be non-empty within [0, {n})")
        slice_module(modules[q], int(dim), kept, q)
    return model
