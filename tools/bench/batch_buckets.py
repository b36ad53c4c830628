"""One artifact for several batch sizes: does the speedup searched at one size hold at the others?

spdy.compile(..., batch_sizes=[1, 8, 32]) searches the profile at the example's batch size and
builds the same weights at every other size, measuring each against the dense artifact of that
size (spdy/passes/build_buckets.py); each correction round is judged by its slowest size. This bench compiles
the residual MNIST CNN (trained here for --train-steps steps, as tools/bench/closed_loop_noise.py
does) with real MNIST calibration, searched at --search-batch, and prints per size: the dense
and sparse artifact's median ms, the paired speedup with its p10..p90, and whether it meets the
target; then the accuracy on --test MNIST test images of the dense model and the pruned model in
PyTorch, and of the bucketed artifact at batch 1 and at the largest size (the same weights as the
pruned model, so all three must agree).

    .venv/bin/python tools/bench/batch_buckets.py --speedup 2.0 --sizes 1,8,32 --search-batch 32

Writes tools/bench/results/batch_buckets_<model>_<date>.json (--out).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.bench.closed_loop_noise import data, train_mnist_resnet  # noqa: E402


def accuracy(run, x, y, batch: int) -> float:
    import torch
    hits = 0
    for i in range(0, len(x), batch):
        out = run(x[i:i + batch])
        hits += int((torch.as_tensor(out).argmax(1) == y[i:i + batch]).sum())
    return hits / len(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speedup", type=float, default=2.0)
    ap.add_argument("--sizes", default="1,8,32")
    ap.add_argument("--search-batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--formats", default="bsr16x1", help="comma list, or 'default'")
    ap.add_argument("--train-steps", type=int, default=300)
    ap.add_argument("--calib", type=int, default=512)
    ap.add_argument("--grid-levels", type=int, default=21)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch

    import spdy
    from spdy.data.mnist import load_mnist
    from spdy.errors import InfeasibleSpeedupError
    from spdy.models.mnist_cnn import mnist_normalize
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    model, loss = train_mnist_resnet(args.train_steps)
    x, calib = data(args.search_batch, args.calib)
    formats = None if args.formats == "default" else tuple(args.formats.split(","))
    t0 = time.perf_counter()
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "args": vars(args),
              "train_loss": loss, "date": datetime.date.today().isoformat()}
    try:
        cm = spdy.compile(model, (x,), speedup=args.speedup, num_threads=args.threads, calib=calib, batch_sizes=sizes, formats=formats, tune=args.tune, grid_levels=args.grid_levels,
                          compare_onnxruntime=False)
        result.update(status="met", buckets=cm.report["batch_buckets"], profile=cm.profile,
                      rounds=[{"round": r["round"], "measured_at_search_batch": r["measured_speedup"],
                               "predicted": r.get("predicted_speedup"),
                               "sizes": {b["batch"]: b.get("measured_speedup") for b in r.get("batch_buckets", [])}}
                              for r in cm.report["rounds"]],
                      mean_sparsity=sum(v["sparsity"] for v in cm.profile.values()) / max(1, len(cm.profile)))
    except InfeasibleSpeedupError as exc:
        cm = None
        result.update(status="infeasible", error=str(exc))
    result["compile_s"] = round(time.perf_counter() - t0, 1)
    if cm is not None:
        xt, yt = load_mnist("test")
        xt, yt = mnist_normalize(xt[: args.test]), yt[: args.test]
        with torch.no_grad():
            result["accuracy"] = {"pytorch_dense": accuracy(model, xt, yt, 256),
                                  "pytorch_pruned": accuracy(cm.pruned_model, xt, yt, 256),
                                  "artifact_batch1": accuracy(cm, xt, yt, 1),
                                  f"artifact_batch{max(sizes)}": accuracy(cm, xt, yt, max(sizes))}
    print(f"residual MNIST CNN, {args.threads} threads, searched at batch {args.search_batch}, "
          f"target {args.speedup}x: {result['status']} in {result['compile_s']} s")
    if cm is None:
        print(result["error"])
    else:
        print(f"{'batch':>5} {'dense ms':>9} {'spdy ms':>8} {'speedup':>8} {'p10..p90':>13} {'meets':>6}")
        for r in result["buckets"]:
            p = r.get("p10_p90") or [float("nan")] * 2
            print(f"{r['batch']:>5} {r['dense_ms']:>9.3f} {r['artifact_ms']:>8.3f} {r['measured_speedup']:>7.2f}x "
                  f"{p[0]:>6.2f}..{p[1]:<5.2f} {str(r.get('meets', True)):>6}")
        for r in result["rounds"]:
            print(f"round {r['round']}: predicted {r['predicted'] or 0:.2f}x, per size "
                  + ", ".join(f"{b}: {v:.2f}x" for b, v in r["sizes"].items() if v))
        print("accuracy:", json.dumps(result["accuracy"]))
    out = Path(args.out) if args.out else ROOT / "tools/bench/results" / \
        f"batch_buckets_mnist_resnet_{args.speedup:g}x_{result['date']}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("wrote", out.relative_to(ROOT) if out.is_relative_to(ROOT) else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
