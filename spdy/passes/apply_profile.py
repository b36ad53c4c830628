"""apply-profile: set each layer's mask (and reconstructed weights, when a database has them)
from the sparsity profile in ctx.artifacts['profile'].

Without a reconstruction database the masks are magnitude masks in the layer's block format:
that is how a user-given profile compiles without calibration data.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from spdy.formats import DENSE, magnitude_mask
from spdy.ir.masks import set_mask
from spdy.ir.tensors import get_tensor, set_tensor
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class ApplyProfilePass(Pass):
    name = "apply-profile"
    requires = ("masks", "profile")
    provides = ("pruned",)

    def run(self, gm, ctx) -> PassResult:
        profile = ctx.need("profile")
        weights = ctx.artifacts.get("profile_weights") or {}  # layer -> (mask, weight) from reconstruction
        layers = {l.qualname: l for l in ctx.need("layers")}
        achieved = {}
        for name, spec in profile.items():
            if spec["format"] == DENSE or spec["sparsity"] <= 0:
                continue
            layer = layers[name]
            w = get_tensor(gm, layer.weight)
            if name in weights:
                mask, new_w = weights[name]
                set_tensor(gm, layer.weight, new_w.to(w.dtype))
            else:
                mask = magnitude_mask(w, spec["format"], spec["sparsity"])
            set_mask(gm, layer, mask)
            achieved[name] = round(1.0 - float(torch.count_nonzero(mask)) / mask.numel(), 4)
        ctx.artifacts["pruned"] = achieved
        return PassResult(gm, bool(achieved), {"pruned_layers": len(achieved), "sparsity": achieved})
