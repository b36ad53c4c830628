"""build-artifact: compile the Relax module for the target and load it for measurement."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.runtime.build import build_executable


@register
@dataclass(frozen=True)
class BuildArtifactPass(Pass):
    name = "build-artifact"
    requires = ("relax", "emit_context")
    provides = ("executable",)

    def run(self, gm, ctx) -> PassResult:
        lowered = ctx.need("relax")
        built = build_executable(lowered, ctx.target, ctx.artifacts["emit_context"],
                                 num_threads=ctx.num_threads)
        ctx.artifacts["executable"] = built
        return PassResult(gm, False, {"build_s": round(built.build_s, 3), "primfuncs": built.num_primfuncs})
