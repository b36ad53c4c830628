"""trace: the user's model -> an fx GraphModule with shapes (fx first, torch.export fallback)."""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.trace import trace_model
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class TracePass(Pass):
    name = "trace"
    provides = ("graph",)
    method: str = "auto"

    def run(self, gm, ctx) -> PassResult:
        result = trace_model(ctx.model, ctx.inputs, method=self.method)  # traces a copy
        ctx.artifacts["graph"] = result.method
        stats = {"method": result.method, "nodes": len(result.gm.graph.nodes)}
        if result.fx_error:
            stats["fx_error"] = result.fx_error
        return PassResult(result.gm, True, stats)
