"""channel-surgery: physically remove channels, then re-fit the layers that read them.

Reads `channel_plan` = {"keep": {group id or layer qualname: kept channel indices}, optional
"groups" (coupling groups; traced from ctx.model when absent) and "grams" (consumer input
Grams for the least-squares re-fit)}. Applies the pure surgery functions of
spdy.passes.algo.surgery to a copy of ctx.model (the user's model is never mutated) and, with
`reconstruct`, replaces each pruned consumer's weights by their least-squares fit on the kept
inputs (spdy.passes.algo.channel_recon.refit_consumers). Provides `pruned_model` (a smaller
dense torch model; also the pass's output graph) and `channel_history`, the replayable JSON
history `[[qualname, dim, kept], ...]` (`spdy.chex.replay(model, history)`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from spdy.ir.groups import channel_groups
from spdy.passes.algo.channel_recon import refit_consumers
from spdy.passes.algo.surgery import ChannelSurgeryError, apply_history, history_from_keep, resolve_group
from spdy.passes.base import Pass, PassResult
from spdy.passes.registry import register


@register
@dataclass(frozen=True)
class ChannelSurgeryPass(Pass):
    name = "channel-surgery"
    requires = ("channel_plan",)
    provides = ("pruned_model", "channel_history")
    reconstruct: bool = True

    def run(self, gm, ctx) -> PassResult:
        plan = ctx.need("channel_plan")
        if not isinstance(plan, dict) or "keep" not in plan:
            raise ChannelSurgeryError("channel_plan must be a dict with a 'keep' entry {group or layer: indices}")
        groups = plan.get("groups") or channel_groups(ctx.model, tuple(ctx.inputs.args))
        keep = {}
        for key, idx in plan["keep"].items():
            g = resolve_group(groups, key)
            if g.id in keep:
                raise ChannelSurgeryError(f"group {g.id} ({g.name}) is named twice in the plan")
            keep[g.id] = list(idx)
        history = history_from_keep(ctx.model, groups, keep)
        pruned = apply_history(ctx.model, history).eval()
        refitted = []
        if self.reconstruct and plan.get("grams"):
            with torch.no_grad():
                refitted = refit_consumers(pruned, ctx.model, history, plan["grams"])
        ctx.artifacts["pruned_model"] = pruned
        ctx.artifacts["channel_history"] = history
        before = sum(p.numel() for p in ctx.model.parameters())
        after = sum(p.numel() for p in pruned.parameters())
        return PassResult(pruned, True, {"groups_pruned": len(keep), "history_entries": len(history),
                                         "refitted": len(refitted), "params_before": before,
                                         "params_after": after})
