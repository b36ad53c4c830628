"""Build an artifact of another torch model inside a compile (a pruned model, an anchor).

The structured compile builds several smaller dense models (each round's pruned model, and
the uniformly narrowed anchors that time reduced widths in place); each goes through the
ordinary dense lowering in a child context that shares the compile's tuner, device, dense
artifact and pass log, so every build shows up in the log and reuses tuned kernels.
"""
from __future__ import annotations

import torch

from spdy.passes.build_artifact import BuildArtifactPass
from spdy.passes.context import CompileContext
from spdy.passes.lower_to_tvm import LowerToTvmPass
from spdy.pipelines import frontend_pipeline

# what a child context shares with the compile
SHARED = ("tuner", "device", "dense_executable", "passlog", "predicted_speedup", "onnxruntime_session")


def build_model_artifact(ctx, model: torch.nn.Module, tune: bool) -> CompileContext:
    """Trace, lower and build `model` (same inputs and target as the compile); returns the
    child context, whose artifacts hold "executable" and "layers"."""
    child = CompileContext(model=model, inputs=ctx.inputs, target=ctx.target, options=ctx.options,
                           workdir=ctx.workdir, dump_graphs=ctx.dump_graphs,
                           artifacts={k: ctx.artifacts[k] for k in SHARED if k in ctx.artifacts})
    child.artifacts["rounds"] = ctx.artifacts.setdefault("rounds", [])
    frontend_pipeline(LowerToTvmPass(tune=tune), BuildArtifactPass()).run(None, child)
    return child
