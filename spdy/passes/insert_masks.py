"""insert-masks: an all-ones weight mask per prunable layer (exactly the dense model)."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.layers import find_layers
from spdy.ir.masks import insert_masks
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class InsertMasksPass(Pass):
    name = "insert-masks"
    requires = ("layers",)
    provides = ("layers", "masks")

    def run(self, gm, ctx) -> PassResult:
        added = insert_masks(gm, ctx.need("layers"))
        ctx.artifacts["layers"] = find_layers(gm)
        ctx.artifacts["masks"] = True
        return PassResult(gm, added > 0, {"masks": added})
