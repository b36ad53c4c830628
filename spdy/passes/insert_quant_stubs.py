"""insert-quant-stubs: an off int8 stub before every prunable layer (exactly the dense model).

Runs when the options include an int8 format; the search and apply-profile switch stubs on
(spdy/ir/quant.py says why the stubs live in the graph).
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.layers import find_layers
from spdy.ir.quant import insert_quant_stubs
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class InsertQuantStubsPass(Pass):
    name = "insert-quant-stubs"
    requires = ("layers",)
    provides = ("layers", "quant_stubs")

    def run(self, gm, ctx) -> PassResult:
        added = insert_quant_stubs(gm, ctx.need("layers"))
        ctx.artifacts["layers"] = find_layers(gm)
        ctx.artifacts["quant_stubs"] = True
        return PassResult(gm, added > 0, {"stubs": added})
