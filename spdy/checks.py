"""Checks that run before any timing: every bad input spdy can see without a kernel is refused
here, with one line naming the problem and the fix.

Why one place: a check that runs after the dense baseline, the latency table or the
reconstruction database costs the user minutes to learn a fact that was known at the call
(issue 21: a 2-layer MLP was refused after 26 s of timing because no layer was prunable).
Two entry points (torch is imported only by the checks that need it, so the CLI refuses a bad
path or speedup before paying for the import):

- `check_options(...)`, from spdy.api.compile_options: the options alone (numbers, paths,
  profile entries), no model.
- `check_before_long_work(model, inputs, options, calib=...)`, from the compile driver before
  any strategy runs: the model, its example inputs and outputs, the calibration data, and,
  for a search or a given profile, the layers the front end finds (which names exist, which
  layers `keep_dense` keeps, whether any layer is left with an option besides dense fp32).

Speed bound: no sound upper bound on the reachable speedup exists before timing. The
fixed (non-layer) time is unknown until the dense artifact is measured, and a layer's sparse
kernel time is not proportional to its density (bsr kernels at 90 % sparsity run 3x to 18x
faster than dense depending on the shape and the format), so any bound computed from sizes
alone would either refuse reachable targets or never fire. The latency table gives the real
bound (InfeasibleSpeedupError) as soon as it exists.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import tempfile
from pathlib import Path

from spdy.errors import (CalibrationError, InputShapeError, ModelError, NoPrunableLayerError, OptionError,
                         OutputPathError)

# The first and last prunable layers stay dense by default only when they are cheap: at most
# this share of the prunable layers' multiply-adds (a CNN's stem and classifier). Then they
# cost little speed and keep the most sensitive layers exact; a layer holding more (each layer
# of a 2-layer MLP holds half) would cap the reachable speedup instead.
CHEAP_END_LAYER_SHARE = 0.10


# --- options -----------------------------------------------------------------------------------

def check_speedup(speedup) -> float:
    """The speedup as a finite float >= 1."""
    if isinstance(speedup, bool) or not isinstance(speedup, (numbers.Real, str)):
        raise OptionError(f"speedup must be a number >= 1.0, got {speedup!r}")
    try:
        value = float(speedup)
    except (TypeError, ValueError):
        raise OptionError(f"speedup must be a number >= 1.0, got {speedup!r}") from None
    if not math.isfinite(value):
        raise OptionError(f"speedup must be a finite number >= 1.0, got {speedup!r}; e.g. speedup=2.0")
    if value < 1.0:
        raise OptionError(f"speedup must be >= 1.0, got {value:g}")
    return value


def _int_option(name: str, value, low: int, *, none_ok: bool = False):
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise OptionError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_writable_dir(path, what: str = "workdir") -> Path:
    """`path` as a directory spdy can write into, or can make (the compile makes it; nothing
    is created here, so a refused compile leaves nothing behind). OutputPathError otherwise."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p} exists and is not a directory; give a directory path")
    existing = p
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or _probe_fails(existing):
        raise OutputPathError(f"{what} {p} is not writable ({existing} does not take new files); give a "
                              "directory you can write to")
    return p


def check_output_path(path, what: str = "output") -> Path:
    """An artifact directory spdy can create or replace: its parent is (or can be made) a
    writable directory, and the path is not an existing file. Nothing is left behind."""
    p = Path(path).expanduser().resolve()
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {p} exists and is not a directory; give a new or artifact directory path")
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"{what} {p}: {parent} is not a directory; give a path under a directory")
    if _probe_fails(parent):
        raise OutputPathError(f"{what} {p} cannot be written: {parent} is not writable; give a path you can "
                              f"write to")
    return p


def _probe_fails(directory: Path) -> bool:
    """True when a file cannot be created in `directory` (read-only mounts, /proc, and root,
    for whom os.access says yes to everything)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".spdy-write-check-", dir=directory)
    except OSError:
        return True
    os.close(fd)
    os.unlink(probe)
    return False


def check_profile_entries(profile, spec=None, unavailable: dict | None = None) -> None:
    """A given profile's shape, and formats the target cannot run (`unavailable`: {format:
    why}, spdy.compiler.offered_formats.formats_report). Layer names, formats and sparsities
    are checked together against the model's layers in check_before_long_work (one error
    naming every problem, with the valid layer names), still before any timing."""
    if profile is None:
        return
    from spdy import formats
    from spdy.errors import SpdyError
    if not isinstance(profile, dict):
        raise OptionError(f"profile must be a dict {{layer: {{'format': ..., 'sparsity': ...}}}}, "
                          f"got {type(profile).__name__}")
    if not unavailable:
        return
    named = set()
    for v in profile.values():
        try:
            named.add(formats.get(formats.normalize(v.get("format", "bsr16x1"), v.get("dtype"))).name)
        except (SpdyError, AttributeError):
            continue   # reported with the layer names later
    bad = sorted(f for f in named if f in unavailable)
    if bad:
        raise OptionError(f"profile formats {bad} cannot run on target {spec}: {unavailable[bad[0]]}; "
                          "choose formats the target runs")


def check_keep_dense(keep_dense):
    """None (the default rule) or a tuple of layer names."""
    if keep_dense is None:
        return None
    if isinstance(keep_dense, str):
        return (keep_dense,)
    try:
        names = tuple(keep_dense)
    except TypeError:
        raise OptionError(f"keep_dense must be a list of layer names (or [] to prune every layer), "
                          f"got {keep_dense!r}") from None
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise OptionError(f"keep_dense must name layers by their qualified names (strings), got {bad!r}")
    return names


def check_options(*, speedup, profile=None, spec=None, unavailable=None, workdir=None, keep_dense=None, num_threads=None,
                  n_samples=1024, max_evals=0, rounds=3, grid_levels=41, global_adaprune=0, seed=0) -> dict:
    """Every option check that needs no model; returns the normalized values by name."""
    out = {"speedup": check_speedup(speedup), "keep_dense": check_keep_dense(keep_dense),
           "num_threads": _int_option("num_threads", num_threads, 1, none_ok=True),
           "n_samples": _int_option("n_samples", n_samples, 1), "max_evals": _int_option("max_evals", max_evals, 0),
           "rounds": _int_option("rounds", rounds, 1), "grid_levels": _int_option("grid_levels", grid_levels, 2),
           "global_adaprune": _int_option("global_adaprune", global_adaprune or 0, 0),
           "seed": _int_option("seed", seed, 0)}
    check_profile_entries(profile, spec, unavailable)
    out["workdir"] = check_writable_dir(workdir) if workdir is not None else None
    return out


# --- the model, its inputs and outputs -----------------------------------------------------------

def check_model(model) -> None:
    """A model whose weights exist on the CPU, in inference mode."""
    import torch
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    meta = [n for n, t in tensors if t.is_meta]
    if meta:
        raise ModelError(f"model weights are on the meta device (e.g. {meta[0]!r}): they hold no values; load "
                         "real weights (model.to_empty(device='cpu') then load_state_dict) before spdy.compile")
    other = sorted({str(t.device) for _, t in tensors if t.device.type != "cpu"})
    if other:
        raise ModelError(f"model weights are on {', '.join(other)}; spdy compiles for the CPU: call model.cpu() first")
    # spdy compiles inference: batch norm is folded with its running statistics. A model in
    # training mode normalizes with batch statistics instead, so the artifact would not compute
    # what the user's model computes; refused, not switched silently.
    bn = [n for n, m in model.named_modules()
          if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training]
    if bn:
        raise ModelError(f"model is in training mode: batch norm {bn[0]!r} would use batch statistics; call "
                         "model.eval() before spdy.compile")


def check_example_inputs(inputs) -> None:
    """Non-empty, non-scalar, real CPU tensors (whether the model takes their dtype is
    checked by running it: integer ids are right for an embedding, wrong for a Linear)."""
    for name, t in list(enumerate(inputs.args)) + list(inputs.kwargs.items()):
        if t.is_meta or t.device.type != "cpu":
            raise InputShapeError(f"example input {name!r} is on {t.device}; give CPU tensors with real values")
        if t.numel() == 0:
            raise InputShapeError(f"example input {name!r} is empty (shape {tuple(t.shape)}); give a tensor "
                                  "with every dimension >= 1")
        if t.dim() == 0:
            raise InputShapeError(f"example input {name!r} is a scalar; give a tensor with a batch dimension")
        if t.is_complex():
            raise InputShapeError(f"example input {name!r} has dtype {t.dtype}; give float32 tensors "
                                  "(or integer ones for embedding indices)")


def _is_model_output(out) -> bool:
    """A transformers ModelOutput (checked by class name: transformers stays an optional import)."""
    return any(c.__name__ == "ModelOutput" and c.__module__.startswith("transformers.") for c in type(out).__mro__)


def check_outputs(model, inputs) -> None:
    """Run the model once: it must accept the example inputs and return a tensor, a tuple or
    list of tensors, or a Hugging Face ModelOutput of tensors (the artifact returns that as the
    tuple `out.to_tuple()`); a plain dict is refused, since its key order is the user's guess."""
    import torch
    try:
        with torch.no_grad():
            out = model(*inputs.args, **inputs.kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's model; its own error is the message
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        given = ", ".join(f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in inputs.flat)
        raise InputShapeError(f"the model fails on the example inputs ({type(exc).__name__}: {first}); check the "
                              f"input shapes and dtypes (given: {given})") from None
    if isinstance(out, torch.Tensor):
        return
    if isinstance(out, dict) and _is_model_output(out):  # the artifact returns out.to_tuple()
        bad = [f"{k}: {type(v).__name__}" for k, v in out.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise ModelError(f"the model returns a {type(out).__name__} with non-tensor fields ({', '.join(bad[:4])}); "
                             "turn them off in the model's config (e.g. use_cache=False) or return tensors only")
        return
    if isinstance(out, dict):
        raise ModelError(f"the model returns a dict (keys {list(out)[:4]}); an artifact returns a tensor or a "
                         "tuple of tensors: wrap the model to return tuple(out.values())")
    if out is None:
        raise ModelError("the model returns None; return the output tensor(s) from forward()")
    if isinstance(out, (tuple, list)):
        bad = [f"{i}: {type(o).__name__}" for i, o in enumerate(out) if not isinstance(o, torch.Tensor)]
        if not out or bad:
            raise ModelError(f"the model returns a {type(out).__name__} with non-tensor items ({', '.join(bad) or 'empty'}); "
                             "return a tensor or a tuple of tensors only")
        return
    raise ModelError(f"the model returns a {type(out).__name__}; return a tensor or a tuple of tensors")


# --- layers, keep_dense and the profile --------------------------------------------------------

def frontend_layers(model, inputs, options) -> list:
    """The prunable layers spdy's front end finds (trace -> canonicalize -> fuse-epilogues),
    run on a scratch context: no pass log, no files, the user's model untouched."""
    from spdy.passes.context import CompileContext
    from spdy.pipelines import frontend_passes
    from spdy.passes.pipeline import Pipeline
    ctx = CompileContext(model=model, inputs=inputs, target=options.target, options=options, instruments=[])
    Pipeline(frontend_passes()).run(None, ctx)
    return list(ctx.artifacts["layers"])


def default_keep_dense(layers) -> tuple[str, ...]:
    """The layers kept dense when the user names none: the first and the last prunable layer,
    each only if it holds at most CHEAP_END_LAYER_SHARE of the prunable layers' multiply-adds
    and some other layer stays prunable (a CNN's stem and classifier stay dense; an MLP's or a
    transformer's large first and last linears are pruned)."""
    prunable = [l for l in layers if not (l.grouped or l.depthwise)]
    if len(prunable) < 3:
        return ()
    total = sum(l.flops for l in prunable) or 1
    ends = dict.fromkeys(l.qualname for l in (prunable[0], prunable[-1]) if l.flops <= CHEAP_END_LAYER_SHARE * total)
    return tuple(ends)


def resolve_keep_dense(layers, keep_dense) -> tuple[str, ...]:
    """The layers kept dense: `keep_dense` checked against the model's layers, or the default."""
    if keep_dense is None:
        return default_keep_dense(layers)
    known = [l.qualname for l in layers]
    unknown = [n for n in keep_dense if n not in known]
    if unknown:
        raise OptionError(f"keep_dense names unknown layer(s) {unknown}; prunable layers are: {sorted(known)}")
    return tuple(keep_dense)


def check_something_to_search(layers, keep, offered: tuple[str, ...]) -> None:
    """NoPrunableLayerError unless some layer has an option other than dense fp32 under `keep`
    and the offered formats: a sparse format on a layer that is not kept dense (nor a grouped
    conv, which has no sparse kernel), or an unpruned int8 format (dense-int8) on any layer."""
    from spdy.formats import DENSE, get as get_format
    if not layers:
        raise NoPrunableLayerError("the model has no Linear or Conv2d layer spdy can prune; nothing to search "
                                   "(compile with speedup=1.0 for spdy's dense kernels)")
    if any(not get_format(f).sparse and f != DENSE for f in offered):
        return
    free = [l.qualname for l in layers if l.qualname not in keep and not (l.grouped or l.depthwise)]
    if free:
        return
    kept = f"keep_dense={list(keep)} keeps every prunable layer dense" if keep else \
        "every layer is a grouped convolution without a sparse kernel"
    raise NoPrunableLayerError(f"no layer can be pruned: {kept} and the formats {list(offered)} offer nothing "
                               "else; pass keep_dense=[] to prune every layer (or add an int8 format)")


# --- the driver's entry point --------------------------------------------------------------------

def check_before_long_work(model, inputs, options, *, calib=None, offered: tuple[str, ...] = ()):
    """Every check that needs the model, run before the dense baseline or any timing.

    Returns (options, calib set or None): options with keep_dense resolved to the layer
    names kept dense when a search runs (so the default rule is applied once, here), and the
    collected calibration set of a search. `offered`: the formats a sparse search is offered.
    """
    check_model(model)
    check_example_inputs(inputs)
    check_outputs(model, inputs)
    from spdy.passes.algo.calib import check_finite_weights, collect_calibration
    check_finite_weights(model)
    search = options.speedup > 1.0
    if not (search or options.profile):
        return options, None
    layers = frontend_layers(model, inputs, options)
    if options.profile:
        from spdy.formats import validate_profile
        validate_profile(dict(options.profile), [l.qualname for l in layers])
    if not search:
        return options, None
    if options.mode == "sparse":
        keep = resolve_keep_dense(layers, options.keep_dense)
        check_something_to_search(layers, keep, offered)
        options = dataclasses.replace(options, keep_dense=keep)
    if calib is None:
        raise CalibrationError("no calibration set given (calib=None); a search (speedup > 1) needs calib= an "
                               "iterable of inputs or (input, label) pairs shaped like example_inputs")
    example = inputs.args if inputs.args else inputs.kwargs
    return options, collect_calibration(calib, example, n_samples=options.n_samples)
