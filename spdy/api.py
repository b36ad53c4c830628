"""spdy.compile: build the context, assemble the pipeline, run it, wrap the result."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from spdy.compiled import CompiledModel
from spdy.errors import NotAvailableError, SpdyError
from spdy.ir.trace import normalize_inputs
from spdy.passes.algo.budget_correction import MeasuredRound, correction_rounds, judge_round
from spdy.passes.apply_profile import ApplyProfilePass
from spdy.passes.build_artifact import BuildArtifactPass
from spdy.passes.calibrate_activations import CalibrateActivationsPass
from spdy.passes.calibrate_table import CalibrateTablePass
from spdy.passes.context import CompileContext
from spdy.passes.dense_baseline import DenseBaselinePass
from spdy.passes.global_adaprune import GlobalAdaPrunePass
from spdy.passes.insert_masks import InsertMasksPass
from spdy.passes.insert_quant_stubs import InsertQuantStubsPass
from spdy.passes.lower_to_tvm import LowerToTvmPass
from spdy.passes.measure_dense import MeasureDensePass
from spdy.passes.pipeline import Pipeline
from spdy.passes.build_database import BuildDatabasePass
from spdy.passes.profile_latency import ProfileLatencyPass
from spdy.passes.solve_sparsity import METHODS, SolveSparsityPass
from spdy.passes.user_profile import UserProfilePass
from spdy.passes.verify_speedup import VerifySpeedupPass
from spdy.errors import InfeasibleSpeedupError
from spdy.pipelines import frontend_pipeline
from spdy.runtime.target import parse_target
from spdy.runtime.threads import ensure_threads


def dense_pipeline(*, tune: bool = True, measure: bool = True) -> Pipeline:
    return frontend_pipeline(LowerToTvmPass(tune=tune), BuildArtifactPass(), *([MeasureDensePass()] if measure else []))


def profile_pipeline(*, tune: bool = True, measure: bool = True, int8: bool = False) -> Pipeline:
    """Compile a user-given profile (magnitude masks, int8 rounded to the nearest grid point, no
    search); `int8`: the profile has int8 layers, whose input ranges are calibrated first."""
    quant = [InsertQuantStubsPass(), CalibrateActivationsPass()] if int8 else []
    passes = [InsertMasksPass(), *quant, UserProfilePass(), ApplyProfilePass(), LowerToTvmPass(tune=tune),
              BuildArtifactPass()]
    if measure:  # the dense artifact is built from the graph before any mask exists
        return frontend_pipeline(DenseBaselinePass(tune=tune), *passes, VerifySpeedupPass())
    return frontend_pipeline(*passes)


def formats_report(spec) -> dict:
    """{"available": [...], "unavailable": {format: why}} of the registry on this target."""
    from spdy import formats
    from spdy.runtime.int8.features import int8_support
    sup = int8_support(spec.to_tvm())
    ok, why = formats.available(sup.isa, sup.reason)
    return {"available": list(ok), "unavailable": why, "int8_kernels": sup.isa}


def default_formats(spec) -> tuple[str, ...]:
    """Every format the target can run (spdy/formats.py): fp32 block sparsity everywhere, and the
    int8 formats where our int8 kernels exist; the latency table then shows which pay off."""
    from spdy import formats
    return tuple(f for f in formats_report(spec)["available"] if f != formats.DENSE)


def check_formats(names, spec) -> tuple[str, ...]:
    """The requested formats as registry names, or one error naming every problem."""
    from spdy import formats
    from spdy.runtime.int8.features import int8_support
    if isinstance(names, str):
        names = (names,)
    try:
        out = tuple(dict.fromkeys(formats.get(n).name for n in names))
    except SpdyError as e:
        raise SpdyError(f"formats: {e}") from None
    int8 = [f for f in out if formats.get(f).int8]
    if int8:
        sup = int8_support(spec.to_tvm())
        _, why = formats.available(sup.isa, sup.reason)
        if any(f in why for f in int8):
            raise SpdyError(f"formats {int8} cannot run on target {spec}: {why[int8[0]]}; leave them out")
    out = tuple(f for f in out if f != formats.DENSE)
    if not out:
        raise SpdyError(f"formats must name at least one format besides 'dense'; valid: {', '.join(formats.FORMATS)}")
    return out


def compile(model: torch.nn.Module, example_inputs, speedup: float = 1.0, target="host", *,  # noqa: A001
            calib=None, profile: dict | None = None, mode: str = "sparse", formats=None,
            method: str = "spdy", seed: int = 0, num_threads: int | None = None, tune: bool = True,
            measure: bool | str = True, workdir: str | Path | None = None, dump_graphs: bool = False,
            n_samples: int = 1024, max_evals: int = 0, rounds: int = 3, grid_levels: int = 41,
            keep_dense=None, global_adaprune: int = 0, compare_onnxruntime: bool = True,
            progress=None) -> CompiledModel:
    """Compile `model` for `target` so that it runs `speedup` times faster than the dense artifact.

    speedup=1.0 compiles the dense model with spdy's kernels. `profile` compiles a given
    per-layer profile instead of searching one ({layer: {"format", "sparsity"}}; formats of
    spdy.formats, int8 ones included). `formats`: the weight formats the search may choose per
    layer (default: every format the target can run, int8 included; see spdy/formats.py).
    Returns a CompiledModel.
    `measure`: False skips end-to-end timing; True or "local" times on this CPU;
    "rpc://HOST:PORT" or "tracker://HOST:PORT/KEY" times kernels, the latency table and the
    artifacts on that device over TVM RPC (see spdy.runtime.device; `spdy device serve`).
    `compare_onnxruntime`: also time the dense model exported to ONNX in onnxruntime (when
    installed) next to PyTorch eager, for the report's speedup_vs_onnxruntime.
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
    if method not in METHODS:
        raise SpdyError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if speedup > 1.0 and profile:
        raise SpdyError("give either speedup (spdy searches a profile) or profile (compiled as given), not both")
    if mode == "channels" and profile:
        raise NotAvailableError("mode='channels' searches widths for a speedup; a per-layer profile is for mode='sparse'")
    spec = parse_target(target)
    formats = check_formats(formats, spec) if formats is not None else default_formats(spec)
    inputs = normalize_inputs(example_inputs)
    threads = ensure_threads(num_threads, default=spec.num_cores)
    device, owns_device = _measure_device(measure)
    measure = measure is not False
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="spdy-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "passlog.jsonl").unlink(missing_ok=True)
    ctx = CompileContext(model=model, inputs=inputs, target=spec, workdir=work, dump_graphs=dump_graphs,
                         options={"num_threads": threads, "seed": seed, "speedup": speedup, "profile": profile,
                                  "calib": calib,
                                  "compare_onnxruntime": bool(compare_onnxruntime)})
    from spdy.runtime.tune import Tuner
    ctx.artifacts["tuner"] = Tuner(target=spec.to_tvm(), num_threads=threads, mode="tune" if tune else "default",
                                   device=device)
    ctx.artifacts["device"] = device
    t0 = time.perf_counter()
    if speedup > 1.0:
        ctx.options.update(calib=calib, progress=progress, latency_db=True, keep_dense=keep_dense,
                           global_adaprune=int(global_adaprune))
        _check_before_long_work(model, inputs, calib, n_samples, ctx)
        if mode == "channels":  # structured: widths per coupling group (spdy/passes/channels_compile.py)
            from spdy.passes.channels_compile import run_channels
            pipeline, gm = run_channels(ctx, speedup, tune=tune, rounds=rounds)
        else:
            pipeline, gm = _run_spdy(ctx, speedup, formats=tuple(formats), method=method, tune=tune, seed=seed,
                                     max_evals=max_evals, n_samples=n_samples, rounds=rounds,
                                     grid_levels=grid_levels)
        records = ctx.artifacts["passlog"]
    else:
        pipeline = profile_pipeline(tune=tune, measure=measure, int8=_has_int8(profile)) if profile \
            else dense_pipeline(tune=tune, measure=measure)
        gm, records = pipeline.run(None, ctx)
    built = ctx.artifacts["executable"]
    report = {
        "mode": ("channels" if mode == "channels" else "spdy") if speedup > 1.0 else "profile" if profile else "dense",
        "method": method if speedup > 1.0 else None,
        "requested_speedup": speedup,
        "target": spec.canonical(),
        "threads": threads,
        "trace_method": ctx.artifacts.get("graph"),
        "layers": [l.to_json() for l in ctx.artifacts.get("layers", [])],
        "compile_s": round(time.perf_counter() - t0, 3),
        "formats": {"offered": list(formats), **formats_report(spec)} if speedup > 1.0 and mode != "channels" else None,
        "pipeline": [r["options"] for r in records],
    }
    tuner = ctx.artifacts.get("tuner")
    if tuner is not None:
        report["tuner"] = dict(tuner.stats)
    report["measure"] = device.report(threads)
    if owns_device:
        device.close()
    for key in ("baseline", "rounds", "pruned", "predicted_speedup", "calib_loss", "channels", "reference_notes"):
        if key in ctx.artifacts:
            report[key] = ctx.artifacts[key]
    if ctx.artifacts.get("verified"):
        report["measured_speedup"] = ctx.artifacts["verified"]["measured_speedup"]
    final_profile = ctx.artifacts.get("profile", {})
    report["profile"] = final_profile
    return CompiledModel(built, report, final_profile, records, pruned_model=gm,
                         example=(inputs.args, inputs.kwargs))


def _has_int8(profile) -> bool:
    """Whether a user profile names an int8 format (invalid entries are user-profile's to report)."""
    from spdy import formats
    for v in (profile or {}).values():
        try:
            if formats.get(formats.normalize(v.get("format", formats.DENSE), v.get("dtype"))).int8:
                return True
        except (SpdyError, AttributeError):
            continue
    return False


def _measure_device(measure):
    """(device, created here) for compile's `measure` option; the device is contacted now, so
    an unreachable one fails before any long work."""
    from spdy.runtime.device import LOCAL, Device, parse_measure
    if isinstance(measure, bool):
        return LOCAL, False
    device = parse_measure(measure)
    device.ensure_reachable()
    return device, not isinstance(measure, Device)


def _check_before_long_work(model, inputs, calib, n_samples, ctx) -> None:
    """Fail fast on bad calibration data or NaN weights, before any kernel is timed."""
    from spdy.passes.algo.calib import check_finite_weights, collect_calibration
    check_finite_weights(dict(model.named_parameters()))
    example = inputs.args if inputs.args else inputs.kwargs
    ctx.artifacts["calib"] = collect_calibration(calib, example, n_samples=n_samples)


def _run_spdy(ctx, speedup, *, formats, method, tune, seed, max_evals, n_samples, rounds, grid_levels):
    """Search a profile, build it, measure it (DESIGN 4.6). A measured speedup short of the
    target beyond noise tightens the budget; one far above it loosens the budget (the table
    over-estimated the sparse kernels, and the extra sparsity costs accuracy). Of the rounds
    that meet the target the least calibration loss wins; if none does, InfeasibleSpeedupError
    names the best measured speedup."""
    import copy
    from spdy.formats import get as get_format
    quant = [InsertQuantStubsPass(), CalibrateActivationsPass()] if any(get_format(f).int8 for f in formats) else []
    pre = frontend_pipeline(DenseBaselinePass(tune=tune), InsertMasksPass(), *quant,
                            ProfileLatencyPass(formats=formats, levels=grid_levels), BuildDatabasePass(n_samples=n_samples))
    gm, _ = pre.run(None, ctx)

    adaprune_steps = int(ctx.options.get("global_adaprune") or 0)

    def attempt(scale: float) -> MeasuredRound:
        # Global AdaPrune changes kept weights only, never the profile or the kernels, so it
        # cannot change the artifact's speed: it runs only for a round whose (untuned) artifact
        # met the target, and that round is rebuilt with the tuned weights. On MiniLM it costs
        # ~12 min per round, and two of three rounds missed.
        ctx.artifacts["budget_scale"] = scale
        searched, _ = Pipeline([SolveSparsityPass(method=method, seed=seed, max_evals=max_evals),
                                ApplyProfilePass()]).run(copy.deepcopy(gm), ctx)
        measure = Pipeline([LowerToTvmPass(tune=tune), BuildArtifactPass(), VerifySpeedupPass(), CalibrateTablePass()])
        out, _ = measure.run(copy.deepcopy(searched) if adaprune_steps else searched, ctx)
        m = ctx.artifacts["verified"]
        if adaprune_steps and judge_round(m["measured_speedup"], m.get("predicted_speedup"), speedup).meets:
            out, _ = Pipeline([GlobalAdaPrunePass(steps=adaprune_steps, seed=seed), LowerToTvmPass(tune=tune),
                               BuildArtifactPass()]).run(searched, ctx)
        return MeasuredRound(m, ctx.artifacts.get("calib_loss", 0.0),
                             (out, ctx.artifacts["executable"], ctx.artifacts["profile"]))

    chosen, met = correction_rounds(attempt, speedup, rounds)
    m, loss, (out, built, profile) = chosen.measured, chosen.loss, chosen.payload
    ctx.artifacts.update(executable=built, profile=profile, verified=m, calib_loss=loss,
                         predicted_speedup=m["predicted_speedup"],
                         pruned={k: v["sparsity"] for k, v in profile.items() if v["format"] != "dense"})
    if not met:
        raise InfeasibleSpeedupError(speedup, m["measured_speedup"],
                                     f"the best artifact measured {m['measured_speedup']:.2f}x after "
                                     f"{len(ctx.artifacts['rounds'])} round(s) of budget correction")
    return pre, out
