"""lower-to-tvm: the canonical graph -> a Relax module whose layers call our kernels."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from spdy.formats import get as get_format
from spdy.ir.attention_fusion import attention_candidates, fuse_attention
from spdy.ir.masks import bake_masks
from spdy.ir.qkv_merge import merge_qkv
from spdy.ir.quant import strip_quant
from spdy.ir.trace import run_shape_prop
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.runtime.emit_context import EmitContext
from spdy.runtime.kernels.mha import fusable
from spdy.runtime.lower import lower_to_relax


def sparse_layers(profile: dict | None) -> dict:
    return {k: v for k, v in (profile or {}).items() if v.get("format", "dense") != "dense"}


def lower(gm, ctx, profile: dict | None, tune: bool, inputs=None):
    """Lower `gm` (masks baked into its weights) with the given profile for `inputs` (default:
    the compile's example inputs); returns (lowered, emit ctx)."""
    inputs = inputs or ctx.inputs
    emit = EmitContext(target=ctx.target.to_tvm(), num_threads=ctx.num_threads,
                       tuner=ctx.tuner if tune else None, sparse=sparse_layers(profile))
    return lower_to_relax(with_fused_attention(gm, inputs, profile), inputs.args, inputs.kwargs, emit), emit


def with_fused_attention(gm, inputs, profile: dict | None = None):
    """`gm` itself, or a copy (same weights) whose attention blocks are spdy_attention calls
    (spdy/ir/attention_fusion.py), shapes taken for `inputs` (a batch bucket's may differ), and
    whose dense-int8 query/key/value layers are one layer (spdy/ir/qkv_merge.py)."""
    if not attention_candidates(gm):
        return gm
    fused = torch.fx.GraphModule(gm, copy.deepcopy(gm.graph))
    run_shape_prop(fused, inputs)
    if not fuse_attention(fused, fusable):
        return gm

    def all_dense_int8(names):
        return all((profile or {}).get(n, {}).get("format") == "dense-int8" for n in names)

    merge_qkv(fused, all_dense_int8)
    return fused


@register
@dataclass(frozen=True)
class LowerToTvmPass(Pass):
    name = "lower-to-tvm"
    requires = ("layers",)
    provides = ("relax", "emit_context")
    tune: bool = True

    def run(self, gm, ctx) -> PassResult:
        baked = bake_masks(gm)
        int8 = strip_quant(gm)
        lowered, emit = lower(gm, ctx, ctx.artifacts.get("profile"), self.tune)
        ctx.artifacts["relax"] = lowered
        ctx.artifacts["emit_context"] = emit
        return PassResult(gm, baked > 0, {"kernels": dict(emit.stats), "masks_baked": baked,
                                          "int8_layers": int8,
                                          "sparse_layers": sum(get_format(v["format"]).sparse for v in emit.sparse.values()),
                                          **({"rewrites": lowered.rewrites} if lowered.rewrites else {})})
