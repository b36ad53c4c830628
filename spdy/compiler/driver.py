"""The one compile driver: options in, a built artifact and its report out.

    compile_model(model, example_inputs, CompileOptions, calib=..., strategy=None)

It does what every compile needs, the same for each strategy: decide the thread count (one
rule, spdy.runtime.threads), run every check that needs the model (spdy/checks.py: model,
inputs, outputs, weights, layers under keep_dense, profile names, calibration data) before
anything is timed, contact the measuring device (an unreachable one fails before any long
work), make the tuner and the work directory (a temporary one is removed at the end, error or
not), build the typed context, run the strategy with TVM's own log lines captured into
workdir/tvm.log (spdy.runtime.logs), and write the report. The strategy
(spdy/compiler/strategy.py) is picked from the options unless given.
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdy.compiler.channels import ChannelsStrategy
from spdy.compiler.dense import DenseStrategy, ProfileStrategy
from spdy.compiler.report import compile_report
from spdy.compiler.sparse import SparseStrategy
from spdy.compiler.strategy import Strategy
from spdy.ir.batch import batch_of
from spdy.ir.trace import normalize_inputs
from spdy.passes.build_buckets import BuildBatchBucketsPass
from spdy.passes.context import CompileContext, CompileOptions
from spdy.passes.pipeline import Pipeline
from spdy.runtime.logs import TVM_LOG, tvm_log_capture
from spdy.runtime.target import parse_target
from spdy.runtime.threads import ensure_threads

STRATEGIES: dict[str, type] = {s.name: s for s in (DenseStrategy, ProfileStrategy, SparseStrategy, ChannelsStrategy)}


def strategy_for(options: CompileOptions) -> Strategy:
    """dense (speedup 1), profile (a given profile), sparse (a searched profile: SPDY or a
    baseline, options.method) or channels (options.mode == "channels")."""
    if options.speedup > 1.0:
        return STRATEGIES["channels" if options.mode == "channels" else "sparse"]()
    return STRATEGIES["profile" if options.profile else "dense"]()


@dataclass
class CompileResult:
    """What spdy.compile wraps into a CompiledModel."""
    built: Any                 # spdy.runtime.build.Built
    report: dict
    profile: dict
    passlog: list
    pruned_model: Any          # the graph (or for channels the torch model) the artifact was built from
    example: tuple             # (args, kwargs) the model was compiled for


def compile_model(model, example_inputs, options: CompileOptions, *, calib=None, progress=None,
                  strategy: Strategy | None = None) -> CompileResult:
    """Compile `model` as `options` ask (spdy.api.compile validated them)."""
    spec = parse_target(options.target)
    threads = ensure_threads(options.num_threads, default=spec.num_cores)
    options = dataclasses.replace(options, target=spec, num_threads=threads)   # decided once, here
    strategy = strategy or strategy_for(options)
    inputs = normalize_inputs(example_inputs)
    check_example_batch(inputs, options.batch_sizes)
    options, calib_set = check_before_long_work(model, inputs, options, calib)
    device, owns_device = measure_device(options.measure)
    own_work = not options.workdir   # a temp folder of this compile: removed at the end, error or not
    work = Path(options.workdir) if options.workdir else Path(tempfile.mkdtemp(prefix="spdy-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
        (work / "passlog.jsonl").unlink(missing_ok=True)
        from spdy.runtime.tune import Tuner
        tuner = Tuner(target=spec.to_tvm(), num_threads=threads, mode="tune" if options.tune else "default",
                      device=device)
        ctx = CompileContext(model=model, inputs=inputs, target=spec, options=options, device=device, tuner=tuner,
                             calib_source=calib, progress=progress, workdir=work)
        if calib_set is not None:
            ctx.artifacts["calib"] = calib_set
        t0 = time.perf_counter()
        with tvm_log_capture(work / TVM_LOG):
            pruned = strategy.run(ctx)
            if options.batch_sizes:
                Pipeline([BuildBatchBucketsPass(tune=options.tune)]).run(pruned, ctx)
        report = compile_report(ctx, strategy, compile_s=time.perf_counter() - t0)
        if options.batch_sizes:
            report["batch_buckets"] = ctx.artifacts["batch_buckets"]
    finally:
        if owns_device:
            device.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    return CompileResult(ctx.artifacts.get("bucketed") or ctx.artifacts["executable"], report, report["profile"], ctx.passlog, pruned,
                         (inputs.args, inputs.kwargs))


def measure_device(measure):
    """(device, created here) for the `measure` option; the device is contacted now, so an
    unreachable one fails before any long work."""
    from spdy.runtime.device import LOCAL, Device, parse_measure
    if isinstance(measure, bool):
        return LOCAL, False
    device = parse_measure(measure)
    device.ensure_reachable()
    return device, not isinstance(measure, Device)


def check_before_long_work(model, inputs, options: CompileOptions, calib=None):
    """Every check that needs the model, before any kernel is timed (spdy.checks says which);
    returns (options with keep_dense resolved for a search, the collected calibration set or None)."""
    from spdy import checks
    from spdy.compiler.offered_formats import default_formats
    offered = tuple(options.formats) if options.formats else default_formats(options.target)
    return checks.check_before_long_work(model, inputs, options, calib=calib, offered=offered)


def check_example_batch(inputs, sizes) -> None:
    """With batch_sizes, the example's batch (dimension 0 of every input) is the size the
    search runs at, so it must be one of them."""
    if not sizes:
        return
    from spdy.errors import InputShapeError
    b = batch_of(inputs)
    if b not in sizes:
        raise InputShapeError(f"the example inputs have batch size {b}, which is not in batch_sizes "
                              f"{list(sizes)}; give example inputs of one of those sizes (the search runs at it)")
