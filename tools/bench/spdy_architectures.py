"""SPDY on real architectures: does a `speedup=2.0` compile meet its measured speedup?

Models as users bring them, with random weights (seeded; all-zero weights re-drawn, as in
torchvision_models.py) and synthetic calibration data: torchvision ResNet-50,
MobileNetV3-Large, EfficientNet-B0, ConvNeXt-T and ViT-B/16 (1x3x224x224; calibration: --calib
random images, batches of 8), and Hugging Face BERT-base (`transformers.BertModel`, 1x--seq
tokens with an attention mask; calibration: random token ids). Each model is one
`spdy.compile(model, example, speedup=--speedup, calib=...)` with the default formats (int8
and sparse where the target runs them), tuned kernels and the closed loop, in a child process
with a time limit.

Per model: met / met within noise (spdy's closed loop accepts a measured speedup up to 3%
below the target) / missed / infeasible / error, the measured speedup of the artifact against spdy's dense
artifact (the compile's own verify-speedup, timed in alternating blocks) and the prediction,
the rounds it took, how many layers the search could choose for and what it chose (format and
dtype counts), the compile time per phase, and the mean cosine of the artifact's output to the
dense model's on --eval held-out random inputs. With random weights and random data the cosine
says the reconstruction did not break the model, not what accuracy a trained model keeps
(tools/bench/accuracy.py measures that on real weights and data).

Timing runs: run it alone on the machine.

    .venv/bin/python tools/bench/spdy_architectures.py                       # all six
    .venv/bin/python tools/bench/spdy_architectures.py --models resnet50,vit_b_16 --resume

torchvision: see torchvision_models.py (installed with --no-deps beside the pinned torch).
Writes tools/bench/results/spdy_architectures_<speedup>x_<date>.json (--out) after every model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(__file__).resolve().parent
for p in (ROOT, BENCH):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODELS = ("resnet50", "vit_b_16", "bert-base", "convnext_tiny", "efficientnet_b0", "mobilenet_v3_large")


def make_case(name: str, args):
    """(model, example inputs, calibration batches, held-out inputs)."""
    import torch
    if name == "bert-base":
        from hf_encoders import load_model, text_inputs
        model = load_model("bert-base")
        example = text_inputs(args.seq, model.config.vocab_size)
        g = torch.Generator().manual_seed(1)

        def batch(n):
            ids = torch.randint(1000, model.config.vocab_size, (n, args.seq), generator=g)
            return ids, torch.ones(n, args.seq, dtype=torch.long)
        calib = [batch(8) for _ in range(max(1, args.calib // 8))]
        held_out = [batch(1) for _ in range(args.eval)]
        return model, example, calib, held_out
    from torchvision_models import make_model
    model, x = make_model(name)
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(8, *x.shape[1:], generator=g) for _ in range(max(1, args.calib // 8))]
    held_out = [(torch.randn(1, *x.shape[1:], generator=g),) for _ in range(args.eval)]
    return model, (x,), calib, held_out


def _first(out):
    import torch
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "to_tuple"):
        out = out.to_tuple()
    return out[0]


def mean_cosine(cm, model, held_out) -> float:
    import torch
    cos = []
    with torch.no_grad():
        for inputs in held_out:
            ref = _first(model(*inputs)).flatten().double()
            got = torch.as_tensor(cm.runner.run_numpy([t.numpy() for t in inputs])[0]).flatten().double()
            cos.append(float(torch.nn.functional.cosine_similarity(ref, got, dim=0)))
    return sum(cos) / len(cos)


def chosen(profile: dict) -> dict:
    """Layers per chosen format ({"dense-int8": 40, "bsr16x1": 9, ...}); a sparse format at
    sparsity 0 counts as "dense"."""
    out: dict = {}
    for p in profile.values():
        fmt = p.get("format", "dense")
        key = fmt if p.get("sparsity", 0) > 0 or fmt.startswith("dense") else "dense"
        out[key] = out.get(key, 0) + 1
    return out


def status_of(measured: float | None, target: float) -> str:
    """met; met within noise (spdy's own rule: within budget_correction.NOISE below the
    target counts as meeting it, the band the closed loop accepts); or missed."""
    from spdy.passes.algo.budget_correction import NOISE
    if measured is not None and measured >= target:
        return "met"
    return "met within noise" if measured is not None and measured >= target * (1 - NOISE) else "missed"


def run_one(name: str, args) -> dict:
    import torch

    import spdy
    from accuracy import phase_times, read_passlog
    from spdy.errors import InfeasibleSpeedupError
    torch.set_num_threads(args.threads)
    model, example, calib, held_out = make_case(name, args)
    row = {"model": name, "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
           "input": [list(t.shape) for t in example], "requested_speedup": args.speedup,
           "settings": {k: getattr(args, k) for k in ("calib", "grid_levels", "max_evals", "tune")}}
    workdir = Path(tempfile.mkdtemp(prefix=f"spdy-arch-{name}-"))
    t0 = time.perf_counter()
    try:
        cm = spdy.compile(model, example, speedup=args.speedup, calib=calib, n_samples=args.calib,
                          grid_levels=args.grid_levels, max_evals=args.max_evals, num_threads=args.threads,
                          tune=args.tune, workdir=workdir, progress=False)
    except InfeasibleSpeedupError as e:
        log = read_passlog(workdir)
        measured = [r["stats"]["measured_speedup"] for r in log if r["pass"] == "verify-speedup" and r.get("stats")]
        return row | {"status": "infeasible", "error": str(e).splitlines()[0][:400],
                      "max_speedup_reported": e.max_speedup, "measured_rounds": measured,
                      "compile_s": round(time.perf_counter() - t0, 1), "phases_s": phase_times(log)}
    except Exception as e:  # noqa: BLE001 - a failing compile is a result row
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return row | {"status": "error", "error": f"{type(e).__name__}: {msg[:500]}",
                      "compile_s": round(time.perf_counter() - t0, 1), "phases_s": phase_times(read_passlog(workdir))}
    rep = cm.report
    layers = rep.get("layers", [])
    rounds = rep.get("rounds", [])
    return row | {
        "status": status_of(rep.get("measured_speedup"), args.speedup),
        "measured_speedup": rep.get("measured_speedup"), "predicted_speedup": rep.get("predicted_speedup"),
        "rounds": [{"measured_speedup": r.get("measured_speedup"), "predicted_speedup": r.get("predicted_speedup"),
                    "artifact_ms": r["artifact"]["median_ms"], "dense_ms": r["dense_artifact"]["median_ms"]}
                   for r in rounds],
        "layers": len(layers), "searched_layers": len(rep.get("profile", {})),
        "chosen": chosen(rep.get("profile", {})), "profile": rep.get("profile"), "trace": rep.get("trace_method"),
        "mean_cosine_to_dense": round(mean_cosine(cm, model, held_out), 5),
        "compile_s": round(time.perf_counter() - t0, 1), "phases_s": phase_times(cm.passlog)}


def run_child(name: str, args) -> dict:
    from child_rows import run_child_row
    cmd = ["--one", name] + [a for k, v in (("--speedup", args.speedup), ("--calib", args.calib), ("--eval", args.eval),
                                            ("--seq", args.seq), ("--grid-levels", args.grid_levels),
                                            ("--max-evals", args.max_evals), ("--threads", args.threads))
                             for a in (k, str(v))]
    return run_child_row(__file__, cmd + ([] if args.tune else ["--no-tune"]), name, args.timeout, failed="error")


def main(argv=None) -> int:
    from child_rows import add_walk_arguments, resumed_rows
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--speedup", type=float, default=2.0)
    ap.add_argument("--calib", type=int, default=32, help="calibration samples")
    ap.add_argument("--eval", type=int, default=8, help="held-out inputs for the cosine")
    ap.add_argument("--seq", type=int, default=128, help="BERT tokens")
    ap.add_argument("--grid-levels", type=int, default=11)
    ap.add_argument("--max-evals", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tune", action=argparse.BooleanOptionalAction, default=True)
    add_walk_arguments(ap, 3600.0, "model")
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return 0
    from spdy.runtime.artifact import write_json
    out = Path(args.out) if args.out else (BENCH / "results" /
                                           f"spdy_architectures_{args.speedup:g}x_{datetime.date.today().isoformat()}.json")
    rows = resumed_rows(out, args)
    done = {r["model"] for r in rows}
    meta = {"command": " ".join(["tools/bench/spdy_architectures.py"] + (argv if argv is not None else sys.argv[1:])),
            **{k: getattr(args, k) for k in ("speedup", "calib", "eval", "seq", "grid_levels", "max_evals",
                                            "threads", "tune")}}
    print(f"{'model':20s} {'status':16s} {'measured':>9s} {'predicted':>9s} {'cosine':>8s} {'compile s':>9s}  chosen")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name in done:
            continue
        row = run_child(name, args)
        rows.append(row)
        write_json(out, {"meta": meta, "models": rows})
        ms, ps = row.get("measured_speedup"), row.get("predicted_speedup")
        print(f"{name:20s} {row['status']:16s} {ms or 0:9.2f} {ps or 0:9.2f} {row.get('mean_cosine_to_dense', 0):8.4f} "
              f"{row.get('compile_s', 0):9.0f}  {row.get('chosen') or row.get('error', '')}", flush=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
