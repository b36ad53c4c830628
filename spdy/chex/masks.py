"""Channel masks over coupling groups, with most-recently-used (MRU) snapshots.

During CHEX training the model keeps its full shape; inactive channels are zeroed in every
tensor of their group (producer filters and biases, BN/LayerNorm affine parameters,
consumers' input slices) after each optimizer step, so they contribute nothing and the
masked model computes what the pruned model will. A snapshot taken at each prune-regrow
step keeps the last values a channel had while active, so a regrown channel resumes from
there (CHEX's MRU restore) instead of from zero. BN running statistics are never zeroed but
are snapshotted and restored too, since they drift while a channel is masked.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn as nn

from spdy.ir.groups import KIND_DIM, ChannelGroup, Member

_PARAMS = {"out": ("weight", "bias"), "dw": ("weight", "bias"), "in": ("weight",),
           "bn": ("weight", "bias"), "ln": ("weight", "bias")}
_STATS = {"bn": ("running_mean", "running_var")}


class GroupMasks:
    def __init__(self, model: nn.Module, groups: Sequence[ChannelGroup]):
        self.model = model
        self.groups = [g for g in groups if g.prunable]
        self.modules = dict(model.named_modules())
        self.active = {g.id: torch.ones(g.size, dtype=torch.bool) for g in self.groups}
        self._mru: dict[str, torch.Tensor] = {}
        self._idx: dict[tuple[int, Member], torch.Tensor] = {}  # cache: masks change rarely

    def _tensors(self, m: Member, stats: bool) -> Iterator[tuple[str, torch.Tensor, int]]:
        mod = self.modules[m.qualname]
        names = _PARAMS[m.kind] + (_STATS.get(m.kind, ()) if stats else ())
        for name in names:
            t = getattr(mod, name, None)
            if isinstance(t, torch.Tensor):
                yield f"{m.qualname}.{name}", t, KIND_DIM[m.kind] if name == "weight" else 0

    def _inactive(self, g: ChannelGroup, m: Member) -> torch.Tensor:
        key = (g.id, m)
        if key not in self._idx:
            ch = (~self.active[g.id]).nonzero().flatten().numpy()
            self._idx[key] = torch.as_tensor(m.indices(ch), dtype=torch.long)
        return self._idx[key]

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every inactive channel's parameters (call after each optimizer step)."""
        for g in self.groups:
            if bool(self.active[g.id].all()):
                continue
            for m in g.members:
                idx = self._inactive(g, m)
                for _, t, dim in self._tensors(m, stats=False):
                    t.index_fill_(dim, idx, 0.0)

    @torch.no_grad()
    def snapshot(self) -> None:
        """Remember current values of every group tensor (the MRU store)."""
        for g in self.groups:
            for m in g.members:
                for key, t, _ in self._tensors(m, stats=True):
                    self._mru[key] = t.detach().clone()

    @torch.no_grad()
    def restore_inactive(self) -> None:
        """Put MRU values back into the currently inactive channels."""
        if not self._mru:
            return
        for g in self.groups:
            if bool(self.active[g.id].all()):
                continue
            for m in g.members:
                idx = self._inactive(g, m)
                for key, t, dim in self._tensors(m, stats=True):
                    t.index_copy_(dim, idx, self._mru[key].index_select(dim, idx))

    def set_active(self, gid: int, channels: torch.Tensor) -> None:
        mask = torch.zeros_like(self.active[gid])
        mask[channels] = True
        self.active[gid] = mask
        self._idx = {k: v for k, v in self._idx.items() if k[0] != gid}

    def kept(self) -> dict[int, list[int]]:
        return {gid: a.nonzero().flatten().tolist() for gid, a in self.active.items()}

    def counts(self) -> dict[int, int]:
        return {gid: int(a.sum()) for gid, a in self.active.items()}
