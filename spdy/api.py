"""spdy.compile: build the context, assemble the pipeline, run it, wrap the result."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from spdy.compiled import CompiledModel
from spdy.errors import NotAvailableError, SpdyError
from spdy.ir.trace import normalize_inputs
from spdy.passes.apply_profile import ApplyProfilePass
from spdy.passes.build_artifact import BuildArtifactPass
from spdy.passes.canonicalize import CanonicalizePass
from spdy.passes.context import CompileContext
from spdy.passes.dense_baseline import DenseBaselinePass
from spdy.passes.fuse_epilogues import FuseEpiloguesPass
from spdy.passes.insert_masks import InsertMasksPass
from spdy.passes.lower_to_tvm import LowerToTvmPass
from spdy.passes.measure_dense import MeasureDensePass
from spdy.passes.pipeline import Pipeline
from spdy.passes.trace import TracePass
from spdy.passes.user_profile import UserProfilePass
from spdy.passes.verify_speedup import VerifySpeedupPass
from spdy.runtime.target import parse_target


def dense_pipeline(*, tune: bool = True, measure: bool = True) -> Pipeline:
    passes = [TracePass(), CanonicalizePass(), FuseEpiloguesPass(), LowerToTvmPass(tune=tune),
              BuildArtifactPass()]
    if measure:
        passes.append(MeasureDensePass())
    return Pipeline(passes)


def profile_pipeline(*, tune: bool = True, measure: bool = True) -> Pipeline:
    """Compile a user-given sparsity profile (magnitude masks, no search)."""
    passes = [TracePass(), CanonicalizePass(), FuseEpiloguesPass(), InsertMasksPass(), UserProfilePass(),
              ApplyProfilePass(), LowerToTvmPass(tune=tune), BuildArtifactPass()]
    if measure:
        passes[3:3] = [DenseBaselinePass(tune=tune)]
        passes.append(VerifySpeedupPass())
    return Pipeline(passes)


def compile(model: torch.nn.Module, example_inputs, speedup: float = 1.0, target="host", *,  # noqa: A001
            calib=None, profile: dict | None = None, mode: str = "sparse", formats=("bsr16x1",),
            method: str = "spdy", seed: int = 0, num_threads: int | None = None, tune: bool = True,
            measure: bool = True, workdir: str | Path | None = None, dump_graphs: bool = False) -> CompiledModel:
    """Compile `model` for `target` so that it runs `speedup` times faster than the dense artifact.

    speedup=1.0 compiles the dense model with spdy's kernels. `profile` compiles a given
    per-layer sparsity profile instead of searching one. Returns a CompiledModel.
    """
    if not isinstance(model, torch.nn.Module):
        raise SpdyError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        speedup = float(speedup)
    except (TypeError, ValueError):
        raise SpdyError(f"speedup must be a number >= 1.0, got {speedup!r}") from None
    if speedup < 1.0:
        raise SpdyError(f"speedup must be >= 1.0, got {speedup:g}")
    if mode not in ("sparse", "channels"):
        raise SpdyError(f"mode must be 'sparse' or 'channels', got {mode!r}")
    if speedup > 1.0 and profile:
        raise SpdyError("give either speedup (spdy searches a profile) or profile (compiled as given), not both")
    if speedup > 1.0:
        raise NotAvailableError(
            "sparse compilation with a speedup target is not available yet in this version of spdy: "
            "the SPDY search has not landed; compile with speedup=1.0 or pass profile={layer: {...}}")
    spec = parse_target(target)
    inputs = normalize_inputs(example_inputs)
    threads = int(num_threads or spec.num_cores)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="spdy-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "passlog.jsonl").unlink(missing_ok=True)
    ctx = CompileContext(model=model, inputs=inputs, target=spec, workdir=work, dump_graphs=dump_graphs,
                         options={"num_threads": threads, "seed": seed, "speedup": speedup, "profile": profile})
    pipeline = profile_pipeline(tune=tune, measure=measure) if profile else dense_pipeline(tune=tune, measure=measure)
    t0 = time.perf_counter()
    gm, records = pipeline.run(None, ctx)
    built = ctx.artifacts["executable"]
    report = {
        "mode": "profile" if profile else "dense",
        "requested_speedup": speedup,
        "target": spec.canonical(),
        "threads": threads,
        "trace_method": ctx.artifacts.get("graph"),
        "layers": [l.to_json() for l in ctx.artifacts.get("layers", [])],
        "compile_s": round(time.perf_counter() - t0, 3),
        "pipeline": [p.to_text() for p in pipeline.passes],
    }
    for key in ("baseline", "rounds", "pruned"):
        if key in ctx.artifacts:
            report[key] = ctx.artifacts[key]
    if ctx.artifacts.get("verified"):
        report["measured_speedup"] = ctx.artifacts["verified"]["measured_speedup"]
    final_profile = ctx.artifacts.get("profile", {})
    report["profile"] = final_profile
    return CompiledModel(built, report, final_profile, records, pruned_model=gm)
