"""apply-profile: set each layer's mask, weights and int8 stub from the profile in
ctx.artifacts['profile'].

With a reconstruction database (a searched profile) the stored weights are used: re-fitted,
and for int8 options on their grid with their scales. Without one (a user-given profile) the
masks are magnitude masks in the format's blocks and int8 weights are rounded to the nearest
grid point with MSE scales: that is how a given profile compiles without reconstruction. An
int8 layer's stub gets the activation quantization calibrate-activations chose.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from spdy.formats import DENSE, get as get_format, magnitude_mask
from spdy.ir.masks import set_mask
from spdy.ir.quant import set_quant
from spdy.passes.algo.quantize import quantize_rtn, weight_scales
from spdy.ir.tensors import get_tensor, set_tensor
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class ApplyProfilePass(Pass):
    name = "apply-profile"
    requires = ("masks", "profile")
    provides = ("pruned", "quantized")

    def run(self, gm, ctx) -> PassResult:
        profile = ctx.need("profile")
        stored = ctx.artifacts.get("profile_weights") or {}  # layer -> {"mask", "weight"[, "scale", "act"]}
        act_quant = ctx.artifacts.get("act_quant") or {}
        layers = {l.qualname: l for l in ctx.need("layers")}
        achieved, quantized = {}, []
        for name, spec in profile.items():
            fmt = get_format(spec["format"])
            if fmt.name == DENSE:
                continue
            layer = layers[name]
            w = get_tensor(gm, layer.weight)
            if name in stored:
                mask, new_w = stored[name]["mask"], stored[name]["weight"].to(w.dtype)
                scale, act = stored[name].get("scale"), stored[name].get("act")
            else:
                mask = magnitude_mask(w, fmt.name, spec["sparsity"])
                new_w, scale, act = w * mask, None, None
                if fmt.int8:
                    scale = weight_scales(new_w.reshape(new_w.shape[0], -1), "mse")
                    new_w = quantize_rtn(new_w, scale)[1].reshape(w.shape).to(w.dtype)
            if fmt.int8:
                act = act or act_quant.get(name)
                if act is None:
                    raise ValueError(f"layer {name} is int8 but has no activation quantization; "
                                     "calibrate-activations must run before apply-profile")
                set_quant(gm, layer, act, scale)
                quantized.append(name)
            set_tensor(gm, layer.weight, new_w)
            if fmt.sparse:
                set_mask(gm, layer, mask)
                achieved[name] = round(1.0 - float(torch.count_nonzero(mask)) / mask.numel(), 4)
        ctx.artifacts["pruned"] = achieved
        ctx.artifacts["quantized"] = quantized
        return PassResult(gm, bool(achieved or quantized), {"pruned_layers": len(achieved), "sparsity": achieved,
                                                             "int8_layers": len(quantized)})
