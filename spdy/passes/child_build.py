"""Build an artifact of another torch model inside a compile (a pruned model, an anchor).

The structured compile builds several smaller dense models (each round's pruned model, and
the uniformly narrowed anchors that time reduced widths in place); each goes through the
ordinary dense lowering in a child context (CompileContext.child: the compile's services,
pass log and dense artifact), so every build shows up in the log and reuses tuned kernels.
"""
from __future__ import annotations

import torch

from spdy.passes.context import CompileContext
from spdy.pipelines import dense_pipeline


def build_model_artifact(ctx, model: torch.nn.Module, tune: bool) -> CompileContext:
    """Trace, lower and build `model` (same inputs and target as the compile); returns the
    child context, whose artifacts hold "executable" and "layers"."""
    child = ctx.child(model)
    dense_pipeline(tune=tune, measure=False).run(None, child)
    return child
