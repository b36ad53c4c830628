"""spdy.compile: check the user's options, make them a typed CompileOptions, run the driver.

Everything after validation lives in spdy/compiler (one driver, four strategies); this file
is the user's door: each bad option fails here with one line naming the problem and the fix.
"""
from __future__ import annotations

from pathlib import Path

import torch

from spdy.compiled import CompiledModel
from spdy.compiler import CompileOptions, compile_model
from spdy.compiler.offered_formats import check_formats, default_formats, formats_report
from spdy.checks import check_options, check_speedup
from spdy.errors import NotAvailableError, SpdyError
from spdy.ir.batch import check_batch_sizes
from spdy.passes.search_methods import METHODS
from spdy.runtime.target import parse_target


def compile(model: torch.nn.Module, example_inputs, speedup: float = 1.0, target="host", *,  # noqa: A001
            calib=None, profile: dict | None = None, mode: str = "sparse", formats=None,
            method: str = "spdy", seed: int = 0, num_threads: int | None = None, tune: bool = True,
            measure: bool | str = True, workdir: str | Path | None = None, dump_graphs: bool = False,
            n_samples: int = 1024, max_evals: int = 0, rounds: int = 3, grid_levels: int = 41,
            keep_dense=None, global_adaprune: int = 0, compare_onnxruntime: bool = True,
            batch_sizes=None, progress=None) -> CompiledModel:
    """Compile `model` for `target` so that it runs `speedup` times faster than the dense artifact.

    speedup=1.0 compiles the dense model with spdy's kernels. `profile` compiles a given
    per-layer profile instead of searching one ({layer: {"format", "sparsity"}}; formats of
    spdy.formats, int8 ones included). `formats`: the weight formats the search may choose per
    layer (default spdy.formats.DEFAULT: dense-int8, bsr4x4-int8 and bsr16x1 where the target runs
    int8 kernels, else bsr16x1; "all": every format the target can run).
    `method`: the search (spdy.passes.search_methods: "spdy", "uniform", "gmp", "dp-only").
    `keep_dense`: layers a search leaves unpruned (they may still take dense-int8). None: the
    first and the last prunable layer, each only when it holds at most 10% of the prunable
    layers' multiply-adds and at least 3 layers exist (spdy.checks.default_keep_dense): that
    keeps a CNN's cheap, sensitive stem and classifier exact, while a small MLP, where the end
    layers are most of the work, is searched at all. [] prunes every layer.
    Every input spdy can judge without timing is checked first (spdy/checks.py): a bad one
    fails in well under a second with one line naming the fix.
    `workdir`: pass log, graph dumps and tvm.log; without it a temporary folder is used and
    removed at the end.
    `batch_sizes`: e.g. [1, 8, 32]: the artifact holds a function per size (dimension 0 of every
    input is the batch); a call dispatches on its batch size, padding up to the next size and
    cutting the output back; a batch above the largest size is refused. The search runs at the
    example's batch size (one of the list); every other size is built with the same weights and
    its speedup measured against the dense artifact of that size (report["batch_buckets"]);
    a size that misses the speedup fails the compile. Not with mode="channels" yet.
    Returns a CompiledModel. Hugging Face models compile as they are (the torch.export fallback
    keeps the batch dimension free for calibration); their ModelOutput comes back from the
    artifact, and from cm.pruned_model, as the tuple `out.to_tuple()`.
    `measure`: False skips end-to-end timing; True or "local" times on this CPU;
    "rpc://HOST:PORT" or "tracker://HOST:PORT/KEY" times kernels, the latency table and the
    artifacts on that device over TVM RPC (see spdy.runtime.device; `spdy device serve`).
    `compare_onnxruntime`: also time the dense model exported to ONNX in onnxruntime (when
    installed) next to PyTorch eager, for the report's speedup_vs_onnxruntime.
    """
    if not isinstance(model, torch.nn.Module):
        raise SpdyError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    options = compile_options(speedup=speedup, target=target, profile=profile, mode=mode, formats=formats,
                              method=method, seed=seed, num_threads=num_threads, tune=tune, measure=measure,
                              workdir=workdir, dump_graphs=dump_graphs, n_samples=n_samples, max_evals=max_evals,
                              rounds=rounds, grid_levels=grid_levels, keep_dense=keep_dense,
                              global_adaprune=global_adaprune, compare_onnxruntime=compare_onnxruntime,
                              batch_sizes=batch_sizes)
    return compile_with(model, example_inputs, options, calib=calib, progress=progress)


def compile_options(*, speedup: float = 1.0, target="host", profile=None, mode: str = "sparse", formats=None,
                    method: str = "spdy", keep_dense=None, **rest) -> CompileOptions:
    """spdy.compile's options (not the model, data or callbacks) checked and typed (spdy.checks:
    every check that needs no model runs here)."""
    speedup = check_speedup(speedup)
    if mode not in ("sparse", "channels"):
        raise SpdyError(f"mode must be 'sparse' or 'channels', got {mode!r}")
    if method not in METHODS:
        raise SpdyError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if speedup > 1.0 and profile:
        raise SpdyError("give either speedup (spdy searches a profile) or profile (compiled as given), not both")
    rest["batch_sizes"] = check_batch_sizes(rest.get("batch_sizes"))
    if mode == "channels" and rest["batch_sizes"]:
        raise NotAvailableError("batch_sizes is not available with mode='channels' yet; compile one artifact per "
                                "batch size, or use mode='sparse'")
    if mode == "channels" and profile:
        raise NotAvailableError("mode='channels' searches widths for a speedup; a per-layer profile is for mode='sparse'")
    spec = parse_target(target)
    formats = check_formats(formats, spec) if formats is not None else default_formats(spec)
    given = {k: rest[k] for k in ("num_threads", "n_samples", "max_evals", "rounds", "grid_levels",
                                  "global_adaprune", "seed", "workdir") if k in rest}
    unavailable = formats_report(spec)["unavailable"] if profile else None
    checked = check_options(speedup=speedup, profile=profile, spec=spec, unavailable=unavailable,
                            keep_dense=keep_dense, **given)
    rest.update({k: checked[k] for k in given})
    keep_dense = checked["keep_dense"]
    rest["global_adaprune"] = int(rest.get("global_adaprune") or 0)
    rest["compare_onnxruntime"] = bool(rest.get("compare_onnxruntime", True))
    return CompileOptions(speedup=speedup, target=spec, profile=profile, mode=mode, formats=formats, method=method,
                          keep_dense=keep_dense, **rest)


def compile_with(model: torch.nn.Module, example_inputs, options: CompileOptions, *, calib=None, progress=None,
                 strategy=None) -> CompiledModel:
    """Compile with options already made (compile_options), optionally with a strategy of
    one's own settings (e.g. spdy.compiler.channels.ChannelsStrategy(ratios=(1.0, 0.5)))."""
    r = compile_model(model, example_inputs, options, calib=calib, progress=progress, strategy=strategy)
    return CompiledModel(r.built, r.report, r.profile, r.passlog, pruned_model=r.pruned_model, example=r.example)
