"""global-adaprune: jointly fine-tune the pruned layers' kept weights on the calibration set.

Runs after apply-profile (masks and reconstructed weights in place), against the dense
outputs solve-sparsity computed, with the same calibration loss the search minimised. The
pure algorithm is algo/global_adaprune.py; this pass only collects the layers, batches and
targets, and updates `calib_loss` so the rounds of a compile are compared on the tuned model.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.ir.masks import mask_path
from spdy.ir.tensors import get_tensor
from spdy.passes.algo.global_adaprune import global_adaprune
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register
from spdy.passes.solve_sparsity import batch_loss, forward_first


@register
@dataclass(frozen=True)
class GlobalAdaPrunePass(Pass):
    name = "global-adaprune"
    requires = ("pruned", "calib", "calib_targets")
    provides = ("adapruned", "calib_loss")
    steps: int = 100
    lr: float = 1e-4
    seed: int = 0

    def run(self, gm, ctx) -> PassResult:
        calib, targets = ctx.need("calib"), ctx.need("calib_targets")
        layers = {l.qualname: l for l in ctx.need("layers")}
        # int8 layers keep their weights on the grid they were quantized to (GPTQ already fit
        # them); tuning them in float would leave the grid the kernels and the stub assume
        quantized = set(ctx.artifacts.get("quantized") or ())
        pruned = [layers[n] for n in ctx.need("pruned") if n not in quantized]
        params = [get_tensor(gm, l.weight) for l in pruned]
        masks = [get_tensor(gm, mask_path(l)) for l in pruned]

        def loss_fn(out, target, b):
            s, n = batch_loss(out, target, calib, b)
            return s / max(n, 1)

        stats = global_adaprune(lambda batch: forward_first(gm, batch), params, masks, calib.inputs, targets,
                                loss_fn, steps=self.steps, lr=self.lr, seed=self.seed)
        if "loss_after" in stats:
            ctx.artifacts["calib_loss"] = stats["loss_after"]
        ctx.artifacts["adapruned"] = stats
        return PassResult(gm, stats.get("steps", 0) > 0, {k: round(v, 6) if isinstance(v, float) else v
                                                          for k, v in stats.items()})
