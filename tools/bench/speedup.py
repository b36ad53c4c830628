"""Does the promised speedup hold on the real artifact? spdy.compile at 2x and 3x, measured.

For each model and requested speedup this runs the full SPDY pipeline through the public API
(`spdy.compile(model, (x,), speedup=s, calib=...)`: latency table, reconstruction database,
search, block-sparse lowering, then verify-speedup against the dense artifact with budget
correction rounds) and records, per round, the predicted and the measured speedup, plus the
compile time per pass and the latency-table cache statistics.

The models carry random weights (ResNet-18/50, the BERT encoder block): this bench is about
speed, not accuracy (tools/bench/accuracy.py measures accuracy on real weights and data).
Calibration is random inputs, --calib samples (default 64: the reconstruction database
only needs them to be well conditioned here).

    nice -n 5 python tools/bench/speedup.py --models resnet18 --speedups 2,3
    python tools/bench/speedup.py --models resnet18,resnet50,bert_block --speedups 2,3

Writes a table to stdout and JSON to tools/bench/results/speedup.json (--out), after every row.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# name -> (factory in spdy.models, input shape, keep_dense: None = first/last rule, [] = prune all)
MODELS = {
    "resnet18": ("resnet18", (1, 3, 224, 224), None),
    "resnet50": ("resnet50", (1, 3, 224, 224), None),
    "bert_block": ("bert_encoder_block", (1, 128, 768), []),
    "bert_ffn": ("bert_ffn_block", (1, 128, 768), []),
}


def log(msg: str) -> None:
    print(f"[speedup {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_one(name: str, speedup: float, args) -> dict:
    import torch
    import spdy
    factory, shape, keep = MODELS[name]
    model = getattr(spdy.models, factory)().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    calib = [torch.randn(shape, generator=g) for _ in range(max(1, args.calib))]
    row = {"model": name, "requested": speedup, "calib_samples": args.calib, "keep_dense": keep}
    t0 = time.perf_counter()
    try:
        cm = spdy.compile(model, (x,), speedup=speedup, calib=calib, n_samples=args.calib,
                          max_evals=args.max_evals, keep_dense=keep, tune=not args.no_tune,
                          num_threads=args.threads)
    except spdy.InfeasibleSpeedupError as e:
        row.update(status="infeasible", max_speedup=e.max_speedup, error=str(e),
                   compile_s=round(time.perf_counter() - t0, 1))
        return row
    r = cm.report
    passes = {}
    for rec in cm.passlog:
        passes[rec["pass"]] = round(passes.get(rec["pass"], 0.0) + rec.get("wall_s", 0.0), 1)
    table = next((rec["stats"] for rec in cm.passlog if rec["pass"] == "profile-latency"), {})
    row.update(
        status="ok", compile_s=round(time.perf_counter() - t0, 1), measured_speedup=r.get("measured_speedup"),
        predicted_speedup=r.get("predicted_speedup"),
        met=r.get("measured_speedup", 0) >= speedup * 0.97,
        dense_ms=r["baseline"]["dense_artifact"]["median_ms"],
        artifact_ms=r["rounds"][-1]["artifact"]["median_ms"] if r.get("rounds") else None,
        speedup_vs_torch_eager=(r.get("rounds") or [{}])[-1].get("speedup_vs_torch_eager"),
        speedup_vs_onnxruntime=(r.get("rounds") or [{}])[-1].get("speedup_vs_onnxruntime"),
        rounds=[{k: v for k, v in rd.items() if k in ("round", "predicted_speedup", "measured_speedup",
                                                                    "calibrated_predicted_speedup")
                 or (args.detail and k == "layers_table_vs_in_place")}
                for rd in r.get("rounds", [])],
        pass_s=passes, latency_table=table,
        mean_sparsity=(sum(v["sparsity"] for v in cm.profile.values()) / max(1, len(cm.profile))))
    return row


def _rounds(rounds) -> str:
    return ", ".join(f"{d['measured_speedup']:.2f} ({d['predicted_speedup']:.2f})" for d in rounds)


def table(rows) -> str:
    out = ["| model | requested | measured | predicted | met | rounds: measured (predicted) | dense ms | artifact ms "
           "| compile s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            out.append(f"| {r['model']} | {r['requested']:g}x | infeasible (max {r.get('max_speedup', 0):.2f}x) "
                       f"| | no | | | | {r['compile_s']} |")
            continue
        out.append(f"| {r['model']} | {r['requested']:g}x | {r['measured_speedup']:.2f}x | "
                   f"{r['predicted_speedup']:.2f}x | {'yes' if r['met'] else 'NO'} | "
                   f"{_rounds(r['rounds'])} | "
                   f"{r['dense_ms']:.2f} | {r['artifact_ms']:.2f} | {r['compile_s']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18")
    ap.add_argument("--speedups", default="2,3")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--max-evals", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--detail", action="store_true",
                    help="keep each round's per-layer table and in-place times in the JSON")
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results" / "speedup.json"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"settings": vars(args), "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                                "loadavg_start": os.getloadavg()}, "rows": []}
    for name in args.models.split(","):
        for s in (float(v) for v in args.speedups.split(",")):
            log(f"{name} at {s:g}x")
            row = run_one(name, s, args)
            row["loadavg"] = os.getloadavg()
            log(json.dumps({k: row.get(k) for k in ("model", "requested", "status", "measured_speedup",
                                                      "predicted_speedup", "compile_s")}))
            doc["rows"].append(row)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc, indent=1))
            tmp.replace(out)
    md = table(doc["rows"])
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
