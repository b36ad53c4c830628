"""The `spdy` command.

Exit codes: 0 ok, 1 failure, 2 usage, 3 infeasible speedup. Errors print as one line
(`spdy: error: ...`); `--debug` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from spdy.errors import SpdyError, UsageError
from spdy.report_text import print_passlog, print_report  # noqa: F401  (spdy.cli.print_report: tests, tools)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"cannot parse input shape {text!r}; write it like 1x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(f"input shape {text!r} must have positive dimensions, like 1x3x224x224")
    return dims


def load_factory(spec: str, kind: str = "model"):
    """PKG.MOD:FACTORY -> the factory's result (called with no arguments): a torch module
    for kind="model", any iterable for a calibration set."""
    import torch
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise UsageError(f"{kind} must be given as PKG.MOD:FACTORY (e.g. spdy.models:resnet18), got {spec!r}")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {mod_name!r}: {exc}") from None
    if not hasattr(module, attr):
        raise UsageError(f"{mod_name!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    if kind != "model":
        return obj() if callable(obj) else obj
    model = obj if isinstance(obj, torch.nn.Module) else obj()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _progress():
    """A progress line per long phase, with an ETA (spdy/progress_bar.py)."""
    from spdy.progress_bar import ProgressBar
    return ProgressBar()


def _keep_dense(text):
    """--keep-dense: None (default rule), 'none' (no layer), or comma-separated layer names."""
    if text is None:
        return None
    return [] if text.strip().lower() == "none" else [n.strip() for n in text.split(",") if n.strip()]


def _batch_sizes(text):
    """--batch-sizes 1,8,32 -> (1, 8, 32); spdy.compile checks the values."""
    if text is None:
        return None
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise UsageError(f"cannot parse --batch-sizes {text!r}; write them like 1,8,32") from None


def cmd_compile(args) -> int:
    # what needs neither torch nor tvm first: a typo must not cost their import (seconds)
    from spdy.checks import check_output_path, check_speedup
    check_output_path(args.output)   # minutes of work must not end in an unwritable path
    check_speedup(args.speedup)
    shapes = [parse_shape(s) for s in (args.input or [])]
    if not shapes:
        raise UsageError("give at least one --input shape, e.g. --input 1x3x224x224")
    if not args.calib and args.speedup > 1.0:
        raise UsageError("a sparse compile (--speedup > 1) needs calibration data: --calib PKG.MOD:FACTORY "
                         "returning an iterable of inputs or (input, label) pairs")
    import torch
    import spdy
    model = load_factory(args.model)
    dtype = getattr(torch, args.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise UsageError(f"unknown dtype {args.dtype!r}")
    gen = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(shape, generator=gen).to(dtype) for shape in shapes)
    calib = load_factory(args.calib, kind="calibration set") if args.calib else None
    cm = spdy.compile(model, inputs, speedup=args.speedup, target=args.target, num_threads=args.threads,
                      tune=not args.no_tune, measure=False if args.no_measure else args.measure, calib=calib,
                      mode=args.mode, method=args.method, rounds=args.rounds, grid_levels=args.grid_levels,
                      seed=args.seed, formats=tuple(args.formats.split(",")) if args.formats else None,
                      n_samples=args.samples, max_evals=args.max_evals, keep_dense=_keep_dense(args.keep_dense),
                      global_adaprune=args.global_adaprune, compare_onnxruntime=not args.no_onnxruntime,
                      workdir=args.workdir, dump_graphs=args.dump_graphs, batch_sizes=_batch_sizes(args.batch_sizes),
                      progress=_progress())
    out = cm.save(args.output)
    print_report(cm.report)
    print(f"summary    {compile_summary(cm.report)}")
    print(f"artifact   {out}")
    print(f"report     {out / 'report.html'}")
    return 0


def compile_summary(report: dict) -> str:
    """One line: what was asked, what was measured, how much changed, how long it took."""
    asked = report.get("requested_speedup") or 1.0
    parts = [f"{report.get('mode', '?')} compile"]
    if asked > 1.0:
        pred, meas = report.get("predicted_speedup"), report.get("measured_speedup")
        parts.append(f"{asked:g}x requested, " + (f"{meas:.2f}x measured" if meas else "not measured")
                     + (f" (predicted {pred:.2f}x)" if pred else ""))
        parts.append(f"{len(report.get('pruned') or {})} of {len(report.get('layers') or [])} layers changed")
    else:
        dense = ((report.get("baseline") or {}).get("dense_artifact") or {}).get("median_ms")
        parts.append(f"dense artifact {dense:.3f} ms" if dense else "not timed")
    parts.append(f"{len(report.get('rounds') or [])} round(s)" if report.get("rounds") else "")
    parts.append(f"compiled in {report.get('compile_s', 0):.1f} s")
    return ", ".join(p for p in parts if p)


def cmd_report(args) -> int:
    """`spdy report DIR [--open]`: draw DIR/report.html again from the artifact's files."""
    d = Path(args.dir)
    if not d.is_dir():
        raise UsageError(f"{d} is not a directory; give an artifact directory written by spdy compile or cm.save")
    if not any((d / f).is_file() for f in ("report.json", "passlog.jsonl", "results.json")):
        raise UsageError(f"{d} holds no report.json, passlog.jsonl or results.json: not an spdy artifact or sweep")
    from spdy.report_html import write_report_html
    try:
        path = write_report_html(d)
    except OSError as exc:
        raise SpdyError(f"cannot write {d / 'report.html'} ({exc.strerror or exc}); check the directory's "
                        "permissions") from None
    print(f"report     {path}")
    if args.open:
        import webbrowser
        if not webbrowser.open(path.resolve().as_uri()):
            print("spdy: no web browser found; open the file above", file=sys.stderr)
    return 0


def _read_artifact_json(d: Path, name: str):
    from spdy.runtime.artifact import read_manifest
    read_manifest(d)  # a clear error for a missing/corrupted artifact
    p = d / name
    if not p.exists():
        raise SpdyError(f"{p} is missing; the artifact is incomplete")
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return json.loads(p.read_text())


def cmd_inspect(args) -> int:
    d = Path(args.dir)
    records = _read_artifact_json(d, "passlog.jsonl")
    report = _read_artifact_json(d, "report.json")
    if args.json:
        rows = [r for r in records if args.pass_name is None or r["pass"] == args.pass_name]
        print(json.dumps({"passlog": rows, "report": report}, indent=2))
        return 0
    print_report(report)
    print()
    print_passlog(records, args.pass_name)
    return 0


def cmd_bench(args) -> int:
    import spdy
    runner = spdy.load(args.dir)
    res = runner.time(repeat=args.repeat)
    print(f"{args.dir}: median {res['median_ms']:.3f} ms  p10 {res['p10_ms']:.3f}  p90 {res['p90_ms']:.3f}"
          f"  (n={res['n']}, threads={runner.manifest.get('num_threads')})")
    if args.layers:
        print_layer_times(runner, _read_artifact_json(Path(args.dir), "report.json"))
    return 0


def print_layer_times(runner, report: dict) -> None:
    """Each layer's kernels timed inside the artifact (runtime/call_profile), slowest first."""
    from spdy.runtime.call_profile import per_layer, profile_calls
    names = [l["qualname"] for l in report.get("layers", [])]
    if not names:
        raise SpdyError("report.json lists no layers; `spdy bench --layers` needs an artifact saved by spdy compile")
    times = per_layer(profile_calls(runner, runs=20), names)
    total = sum(times.values()) or 1.0
    prof = report.get("profile", {})
    print(f"{'layer':32s} {'kernel':>16s} {'ms':>9s} {'share':>6s}")
    for name, t in sorted(times.items(), key=lambda kv: -kv[1]):
        p = prof.get(name, {})
        kind = "-" if name == "(other)" else (f"{p['format']}@{p['sparsity']:.0%}" if p.get("sparsity", 0) > 0
                                              else p.get("format", "dense"))
        print(f"{name:32s} {kind:>16s} {t * 1e3:9.3f} {t / total:6.1%}")


def cmd_demo(args) -> int:
    from spdy.models import EXAMPLES
    choices = ["mnist_cnn", *sorted(EXAMPLES)]
    if args.model not in choices:
        raise UsageError(f"unknown demo model {args.model!r}; choose one of {', '.join(choices)}")
    from spdy.demo import run_demo
    run_demo(args.model, args.speedup, args.output, tune=not args.no_tune, progress=_progress())
    return 0


def cmd_cache(args) -> int:
    """``spdy cache stats | export FILE | import FILE | clear``: the latency database."""
    from spdy.runtime.latency_db import LatencyDB
    if args.action in ("export", "import") and not args.file:
        raise UsageError(f"spdy cache {args.action} needs a FILE")
    with LatencyDB() as db:
        if args.action == "stats":
            print(json.dumps(db.stats(), indent=1))
        elif args.action == "export":
            print(f"exported {db.export_json(args.file)} entries to {args.file}")
        elif args.action == "import":
            try:
                n = db.import_json(args.file)
            except (OSError, ValueError, KeyError) as e:
                raise SpdyError(f"cannot import {args.file}: {e}") from None
            print(f"imported {n} entries from {args.file}")
        elif args.action == "clear":
            db.clear()
            print(f"cleared {db.path}")
    return 0


def cmd_device(args) -> int:
    """`spdy device serve`: a TVM RPC server on this machine that spdy compiles can time kernels on."""
    from spdy.runtime.device import serve

    def ready(port):
        use = f"tracker://{args.tracker}/{args.key}" if args.tracker else f"rpc://{args.host}:{port}"
        print(f"spdy device: TVM RPC server on {args.host}:{port}; compile with --measure {use}", flush=True)
    serve(args.host, args.port, args.port_end, tracker=args.tracker, key=args.key, threads=args.threads,
          silent=not args.verbose, ready=ready)
    return 0


class DefaultsShown(argparse.HelpFormatter):
    """Help lines end with the flag's default, unless the help already says it or there is
    none to show (None, or an off switch)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, False, argparse.SUPPRESS)) \
                or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    from spdy.passes.search_methods import METHODS   # (not solve_sparsity: it imports torch, seconds)
    from spdy.version import __version__
    p = argparse.ArgumentParser(prog="spdy", description="compile PyTorch models into fast TVM artifacts")
    p.add_argument("--version", action="version", version=f"spdy {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and TVM's own log lines (as SPDY_LOG=debug)")
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("compile", help="compile a model factory PKG.MOD:FACTORY", formatter_class=DefaultsShown,
                       description="Compile a model for a CPU target; the flags are spdy.compile's keywords.")
    c.add_argument("model", help="PKG.MOD:FACTORY returning a torch.nn.Module (e.g. spdy.models:resnet18)")
    c.add_argument("--input", action="append", help="input shape like 1x3x224x224 (repeat for more inputs)")
    c.add_argument("--dtype", default="float32", help="torch dtype of the random example inputs")
    c.add_argument("--target", default="host",
                   help="LLVM CPU target: host (this CPU's LLVM name and its core count), "
                        "'llvm -mcpu=znver3 -num-cores=2 [-mattr=+avx2,+fma]'")
    c.add_argument("--speedup", type=float, default=1.0,
                   help="speedup over the dense artifact to reach and measure; 1 compiles the dense model, "
                        "> 1 searches a per-layer profile (needs --calib)")
    c.add_argument("--mode", default="sparse", choices=("sparse", "channels"),
                   help="sparse: per-layer weight formats (block-sparse, int8); channels: remove whole channels "
                        "per coupling group (structured pruning)")
    c.add_argument("--threads", type=int, default=None,
                   help="TVM threads (default: TVM_NUM_THREADS if set, else the target's num-cores)")
    c.add_argument("--no-tune", action="store_true", help="default kernel parameters instead of tuning each kernel "
                                                          "(a faster compile, slower kernels)")
    c.add_argument("--no-measure", action="store_true", help="time nothing end to end (measure=False)")
    c.add_argument("--measure", default="local", metavar="WHERE",
                   help="where kernels and artifacts are timed: local, rpc://HOST:PORT or tracker://HOST:PORT/KEY")
    c.add_argument("--calib", help="PKG.MOD:FACTORY returning the calibration iterable (needed for --speedup > 1)")
    c.add_argument("--method", default="spdy", choices=METHODS,
                   help="spdy: search; uniform / gmp: the baselines; dp-only: the DP without search (ablation)")
    c.add_argument("--formats", default=None,
                   help="comma-separated weight formats the search may choose per layer, e.g. "
                        "bsr16x1,dense-int8,bsr16x4-int8 (default: dense-int8,bsr4x4-int8,bsr16x1 where the target "
                        "has int8 kernels, else bsr16x1; 'all': every format)")
    c.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="measured correction rounds at most: a round that misses the target (or overshoots it) "
                        "is re-solved with a corrected budget")
    c.add_argument("--grid-levels", type=int, default=41, metavar="N", help="sparsity levels per format in the "
                                                                               "latency table")
    c.add_argument("--batch-sizes", "--batch", default=None, metavar="SIZES",
                   help="comma-separated batch sizes, e.g. 1,8,32: one artifact with a function per size (the "
                        "--input shapes' first dimension must be one of them; default: the --input batch only)")
    c.add_argument("--samples", type=int, default=1024, help="calibration samples")
    c.add_argument("--max-evals", type=int, default=0, help="cap on search evaluations (0: none)")
    c.add_argument("--seed", type=int, default=0, help="seed of the search")
    c.add_argument("--keep-dense", default=None, metavar="LAYERS",
                   help="comma-separated layers the search leaves dense (default: the first and the last when "
                        "each holds at most 10%% of the multiply-adds; 'none': prune all)")
    c.add_argument("--global-adaprune", type=int, default=0, metavar="STEPS",
                   help="fine-tune the pruned layers jointly for STEPS Adam steps after stitching (0: off)")
    c.add_argument("--no-onnxruntime", action="store_true",
                   help="do not time the dense model in onnxruntime for the report (default: when installed)")
    c.add_argument("--workdir", default=None, help="keep the pass log, graph dumps and tvm.log here "
                                                   "(default: a temporary folder, removed at the end)")
    c.add_argument("--dump-graphs", action="store_true", help="write the graph after each pass into WORKDIR/graphs")
    c.add_argument("-o", "--output", required=True, help="artifact directory to write (with its report.html)")
    c.set_defaults(func=cmd_compile)

    i = sub.add_parser("inspect", help="show an artifact's passes, times and stats")
    i.add_argument("dir")
    i.add_argument("--pass", dest="pass_name", default=None)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    r = sub.add_parser("report", help="(re)build an artifact's report.html", formatter_class=DefaultsShown)
    r.add_argument("dir", help="artifact directory (or a sweep's output directory)")
    r.add_argument("--open", action="store_true", help="open the report in the web browser")
    r.set_defaults(func=cmd_report)

    b = sub.add_parser("bench", help="time an artifact end to end")
    b.add_argument("dir")
    b.add_argument("--repeat", type=int, default=10)
    b.add_argument("--layers", action="store_true",
                   help="also time each layer's kernels inside the artifact (where the time goes)")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("demo", help="compile a built-in example and print its report")
    d.add_argument("--model", default="bert_block",
                   help="mnist_cnn or an example of spdy.models.EXAMPLES (checked when the demo runs: listing "
                        "them here imported torch for every command)")
    d.add_argument("--speedup", type=float, default=2.0)
    d.add_argument("--no-tune", action="store_true")
    d.add_argument("-o", "--output", default="demo-out")
    d.set_defaults(func=cmd_demo)

    k = sub.add_parser("cache", help="the latency database: stats | export FILE | import FILE | clear")
    k.add_argument("action", choices=["stats", "export", "import", "clear"])
    k.add_argument("file", nargs="?")
    k.set_defaults(func=cmd_cache)

    dv = sub.add_parser("device", help="serve this machine as a measuring device (TVM RPC server)")
    dsub = dv.add_subparsers(dest="device_cmd", required=True)
    ds = dsub.add_parser("serve", help="start a TVM RPC server; compiles elsewhere time kernels here with "
                         "--measure rpc://HOST:PORT (runs code clients send: trusted networks only)")
    ds.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: all interfaces)")
    ds.add_argument("--port", type=int, default=9090)
    ds.add_argument("--port-end", type=int, default=None, help="try ports up to this one if --port is taken")
    ds.add_argument("--tracker", default=None, help="HOST:PORT of a TVM RPC tracker to register with")
    ds.add_argument("--key", default="", help="device key at the tracker (clients use tracker://HOST:PORT/KEY)")
    ds.add_argument("--threads", type=int, default=None,
                    help="TVM threads per measurement (default: TVM_NUM_THREADS if set, else all cores)")
    ds.add_argument("--verbose", action="store_true", help="log every session")
    ds.set_defaults(func=cmd_device)

    s = sub.add_parser("sweep", help="sparse double descent study (see `spdy sweep --help`)", add_help=False)
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=None)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sweep":
        from spdy.sweep.cli import main as sweep_main
        return sweep_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.debug:
        import os
        os.environ["SPDY_LOG"] = "debug"   # TVM's own log lines are shown too (spdy.runtime.logs)
    try:
        return args.func(args)
    except SpdyError as exc:
        if args.debug:
            raise
        print(f"spdy: error: {(str(exc).splitlines() or [type(exc).__name__])[0]}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen input: one line, the traceback on --debug
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"spdy: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("spdy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
