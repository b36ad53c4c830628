"""dense-baseline: build the dense artifact every speedup is measured against.

It is built from a copy of the graph taken before any mask exists, with the same kernels and
tuning as the sparse artifact, so "speedup" compares like with like on the same target.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from spdy.passes.base import Pass, PassResult
from spdy.passes.lower_to_tvm import lower
from spdy.passes.registry import register
from spdy.runtime.build import build_executable


@register
@dataclass(frozen=True)
class DenseBaselinePass(Pass):
    name = "dense-baseline"
    requires = ("layers",)
    provides = ("dense_executable", "dense_graph")
    tune: bool = True

    def run(self, gm, ctx) -> PassResult:
        dense_gm = copy.deepcopy(gm)
        lowered, emit = lower(dense_gm, ctx, None, self.tune)
        built = build_executable(lowered, ctx.target, emit, num_threads=ctx.num_threads)
        ctx.artifacts["dense_executable"] = built
        ctx.artifacts["dense_graph"] = dense_gm      # rebuilt at each other batch size (compiler/buckets.py)
        return PassResult(gm, False, {"build_s": round(built.build_s, 3), "kernels": dict(emit.stats)})
