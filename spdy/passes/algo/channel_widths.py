"""Which widths a coupling group may take, and how a choice of widths sizes every layer.

Pure bookkeeping for the structured (mode="channels") compile: one decision per prunable
coupling group (DESIGN 4.7), a width grid per group, and for every conv/linear layer the
groups its input and output channels belong to, so a solution {group id: width} gives each
layer's reduced (in, out) channel counts: the shapes its dense kernel is timed at.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from spdy.ir.groups import ChannelGroup
from spdy.passes.algo.surgery import ChannelSurgeryError

DEFAULT_RATIOS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def width_grid(size: int, ratios=DEFAULT_RATIOS, min_width: int = 1) -> list[int]:
    """Distinct kept-channel counts for a group of `size` channels, full width first.

    Each ratio's count is rounded to a multiple of 16 (groups of >= 128 channels) or 8
    (>= 16 channels) when that keeps it positive: kernels vectorize over 8/16 lanes, so odd
    widths buy little time. Never 0 and never more than `size`.
    """
    for r in ratios:
        if not 0.0 < float(r) <= 1.0:
            raise ChannelSurgeryError(f"keep ratios must lie in (0, 1], got {r}")
    step = 16 if size >= 128 else 8 if size >= 16 else 1
    out = []
    for r in sorted({float(r) for r in ratios} | {1.0}, reverse=True):
        w = int(round(r * size / step)) * step
        w = min(size, max(w, step if step <= size else 1, min_width))
        if w not in out:
            out.append(w)
    return out


@dataclass
class LayerDims:
    """Where a layer's channels come from: (group id, multiplier) pairs per dimension."""
    qualname: str
    in_full: int
    out_full: int
    in_groups: list[tuple[int, int]] = field(default_factory=list)
    out_groups: list[tuple[int, int]] = field(default_factory=list)
    depthwise: bool = False

    def dims(self, sizes: dict[int, int], widths: dict[int, int]) -> tuple[int, int]:
        """(in, out) channel counts when group g keeps widths.get(g, sizes[g]) channels."""
        cin = self.in_full - sum((sizes[g] - widths.get(g, sizes[g])) * m for g, m in self.in_groups)
        cout = self.out_full - sum((sizes[g] - widths.get(g, sizes[g])) * m for g, m in self.out_groups)
        if self.depthwise:
            cin = cout
        return cin, cout


def layer_dims(layers, groups: list[ChannelGroup]) -> dict[str, LayerDims]:
    """LayerDims per canonical layer (LayerInfo list) from the coupling groups."""
    out = {}
    for l in layers:
        if l.kind == "linear":
            cin, cout = l.in_shape[-1], l.out_shape[-1]
        else:
            cin, cout = l.in_shape[1], l.out_shape[1]
        d = LayerDims(l.qualname, int(cin), int(cout), depthwise=l.depthwise)
        for g in groups:
            for m in g.members:
                if m.qualname != l.qualname:
                    continue
                if m.kind == "in":
                    d.in_groups.append((g.id, m.multiplier))
                elif m.kind in ("out", "dw"):
                    d.out_groups.append((g.id, m.multiplier))
        out[l.qualname] = d
    return out


def decision_groups(groups: list[ChannelGroup], min_size: int = 2) -> list[ChannelGroup]:
    """Prunable groups big enough to shrink; the others stay at full width."""
    return [g for g in groups if g.prunable and g.size >= min_size]


def owner_of(dims: LayerDims, decisions: set[int]) -> int | None:
    """The decision group a layer's time is charged to: the group of its output channels."""
    for g, _ in dims.out_groups:
        if g in decisions:
            return g
    return None
