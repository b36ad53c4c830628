"""fuse-epilogues: residual adds and activations folded into the layer ops."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.fuse import fuse_epilogues
from spdy.ir.layers import find_layers
from spdy.ir.trace import run_shape_prop
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class FuseEpiloguesPass(Pass):
    name = "fuse-epilogues"
    requires = ("layers",)
    provides = ("layers", "fused")

    def run(self, gm, ctx) -> PassResult:
        stats = fuse_epilogues(gm)
        run_shape_prop(gm, ctx.inputs)
        ctx.artifacts["layers"] = find_layers(gm)  # node names changed
        ctx.artifacts["fused"] = True
        return PassResult(gm, bool(stats["residual"] or stats["activation"]), stats)
