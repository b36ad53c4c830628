"""Every torchvision classifier, compiled dense by spdy and checked against PyTorch.

For each builder of ``torchvision.models.list_models(module=torchvision.models)``: the model with
random weights (seeded; every all-zero weight or bias re-drawn, so a zero-initialized head
cannot make the check vacuous), in eval mode, on one 1x3x224x224 input (inception_v3:
299x299); ``spdy.compile(model, (x,), measure=False)`` (untuned unless --tune), and the
artifact's output against the eager model's. Each model runs in a child process with a time
limit, so one crash or hang is one row, not the end of the bench.

Status per builder: ok (max |diff| <= --tol x max |output|), mismatch (with the error),
failed (the first line of the error, which names the op or the pass), timeout, skipped
(more than --max-params parameters: the largest models take many minutes and GBs to build
on a 2-vCPU machine; --max-params 0 runs them all).

torchvision is installed beside the pinned CPU torch with ``pip install --no-deps
torchvision==0.28.0``; its C ops do not load against that torch, and
spdy.models.torchvision_import makes the import work (the classifiers are pure Python).

    .venv/bin/python tools/bench/torchvision_models.py                    # every builder
    .venv/bin/python tools/bench/torchvision_models.py --models resnet18,swin_t,maxvit_t

Results are written after every model (atomically, spdy.runtime.artifact.write_json) to
tools/bench/results/torchvision_models_<date>.json (--out); a rerun with --resume skips the
builders already there (except those named by --redo).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

INPUT_SIZE = {"inception_v3": 299}


def builders() -> list[str]:
    from spdy.models.torchvision_import import import_torchvision
    tv = import_torchvision()
    return list(tv.models.list_models(module=tv.models))


def make_model(name: str, seed: int = 0):
    """(model in eval mode with no all-zero weight, example input)."""
    import torch
    from spdy.models.torchvision_import import import_torchvision
    tv = import_torchvision()
    torch.manual_seed(seed)
    model = tv.models.get_model(name, weights=None).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and not p.any():
                p.normal_(0.0, 0.02)
    size = INPUT_SIZE.get(name, 224)
    return model, torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def run_one(name: str, args) -> dict:
    """One builder, in this process."""
    import numpy as np
    import torch

    import spdy
    torch.set_num_threads(args.threads)
    model, x = make_model(name)
    params = sum(p.numel() for p in model.parameters())
    row = {"model": name, "params_m": round(params / 1e6, 1), "input": list(x.shape)}
    if args.max_params and params / 1e6 > args.max_params:
        return row | {"status": "skipped", "error": f"{params / 1e6:.0f} M parameters > --max-params {args.max_params:g}"}
    with torch.no_grad():
        ref = model(x)
    ref = ref if isinstance(ref, torch.Tensor) else ref[0]
    t0 = time.perf_counter()
    try:
        cm = spdy.compile(model, (x,), measure=False, tune=args.tune, num_threads=args.threads, progress=False)
    except Exception as e:  # noqa: BLE001 - a failing compile is a result row
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return row | {"status": "failed", "error": f"{type(e).__name__}: {msg[:500]}",
                      "compile_s": round(time.perf_counter() - t0, 1)}
    row["compile_s"] = round(time.perf_counter() - t0, 1)
    row["trace"] = cm.passlog[0]["stats"].get("method")
    rewrites = next((p["stats"].get("rewrites") for p in cm.passlog if p["pass"] == "lower-to-tvm"
                     and p.get("stats")), None)
    if rewrites:
        row["rewrites"] = rewrites
    out = cm.runner.run_numpy([x.numpy()])[0]
    diff = float(np.abs(out - ref.numpy()).max())
    scale = float(np.abs(ref.numpy()).max()) or 1.0
    row.update(max_abs_diff=diff, output_max_abs=scale, rel_diff=diff / scale,
               status="ok" if diff <= args.tol * scale else "mismatch")
    if row["status"] == "mismatch":
        row["error"] = f"max |diff| {diff:.3g} > {args.tol} x max |output| {scale:.3g}"
    return row


def run_child(name: str, args) -> dict:
    from child_rows import run_child_row
    cmd = ["--one", name, "--threads", str(args.threads), "--tol", str(args.tol), "--max-params", str(args.max_params)]
    return run_child_row(__file__, cmd + (["--tune"] if args.tune else []), name, args.timeout)


def main(argv=None) -> int:
    from child_rows import add_walk_arguments, resumed_rows
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="", help="comma list of builders (default: every classifier)")
    ap.add_argument("--max-params", type=float, default=150.0,
                    help="skip builders with more parameters, in millions (0: none skipped)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-3, help="max |diff| allowed, relative to max |output|")
    ap.add_argument("--tune", action="store_true", help="tune the kernels (slow; numerics do not need it)")
    add_walk_arguments(ap, 1200.0, "builder")
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    from spdy.runtime.artifact import write_json
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return 0
    names = [m.strip() for m in args.models.split(",") if m.strip()] or builders()
    out = Path(args.out) if args.out else (
        ROOT / "tools" / "bench" / "results" / f"torchvision_models_{datetime.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = resumed_rows(out, args)
    done = {r["model"] for r in rows}
    meta = {"command": " ".join(["tools/bench/torchvision_models.py"] + (argv if argv is not None else sys.argv[1:])),
            "torchvision": _tv_version(), "threads": args.threads, "tol": args.tol,
            "tune": args.tune, "max_params_m": args.max_params}
    for name in names:
        if name in done:
            continue
        row = run_child(name, args)
        rows.append(row)
        detail = f"rel diff {row['rel_diff']:.1e}" if "rel_diff" in row else row.get("error", "")
        print(f"{name:24s} {row['status']:9s} {row.get('compile_s', '-')!s:>7} s  {detail[:150]}", flush=True)
        write_json(out, {"meta": meta, "models": rows})
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"\n{len(rows)} builders: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print(f"wrote {out}")
    return 0


def _tv_version() -> str:
    from spdy.models.torchvision_import import import_torchvision
    return import_torchvision().__version__


if __name__ == "__main__":
    sys.exit(main())
