"""lower-to-tvm: the canonical graph -> a Relax module whose layers call our kernels."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.masks import bake_masks
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.runtime.emit_context import EmitContext
from spdy.runtime.lower import lower_to_relax


@register
@dataclass(frozen=True)
class LowerToTvmPass(Pass):
    name = "lower-to-tvm"
    requires = ("layers",)
    provides = ("relax",)
    tune: bool = True

    def run(self, gm, ctx) -> PassResult:
        baked = bake_masks(gm)
        profile = ctx.artifacts.get("profile") or {}
        sparse = {k: v for k, v in profile.items() if v.get("format", "dense") != "dense"}
        emit = EmitContext(target=ctx.target.to_tvm(), num_threads=ctx.options.get("num_threads", 1),
                           tuner=ctx.artifacts.get("tuner") if self.tune else None, sparse=sparse)
        lowered = lower_to_relax(gm, ctx.inputs.args, ctx.inputs.kwargs, emit)
        ctx.artifacts["relax"] = lowered
        ctx.artifacts["emit_context"] = emit
        return PassResult(gm, baked > 0, {"kernels": dict(emit.stats), "masks_baked": baked,
                                          "sparse_layers": len(sparse)})
