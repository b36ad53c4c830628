"""canonicalize: layers -> spdy ops, batch norm folded, prunable layers discovered."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers
from spdy.ir.trace import run_shape_prop
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class CanonicalizePass(Pass):
    name = "canonicalize"
    requires = ("graph",)
    provides = ("layers",)

    def run(self, gm, ctx) -> PassResult:
        stats = canonicalize(gm)
        run_shape_prop(gm, ctx.inputs)
        layers = find_layers(gm)
        ctx.artifacts["layers"] = layers
        stats.update(layers=len(layers), depthwise=sum(l.depthwise for l in layers),
                     grouped=sum(l.grouped for l in layers))
        return PassResult(gm, True, stats)
