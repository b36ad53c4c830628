"""How long does SPDY's search take? 1000 evaluations on the MNIST CNN, 1024 calibration samples.

Each evaluation is one DP solve over the latency table plus one forward pass of the stitched
model (reconstructed weights swapped in place) over the whole calibration set; issue 5's
target is 1000 evaluations in under 5 minutes on this CPU. The bench builds what the search
needs with the compile's own passes (trace .. build-database, cached), then times 1000
evaluations exactly as the search makes them: a random sensitivity vector c -> error table
-> DP -> stitched-model loss. (The search itself caches repeated profiles, and on this
small CNN, 4 prunable layers with first/last kept dense unless --keep-dense none, most
profiles repeat, so a plain search run would hide the cost; this times distinct work.)

    python tools/bench/search_speed.py [--evals 1000] [--calib 1024]

Prints a line and writes tools/bench/results/search_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=1000)
    ap.add_argument("--calib", type=int, default=1024)
    ap.add_argument("--speedup", type=float, default=1.3)
    ap.add_argument("--keep-dense", default="default", help="'default' (first/last dense) or 'none'")
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results" / "search_speed.json"))
    args = ap.parse_args(argv)
    import torch
    from spdy.data.mnist import load_mnist
    from spdy.ir.trace import normalize_inputs
    from spdy.models.mnist_cnn import mnist_cnn, mnist_normalize
    from spdy.passes.algo.calib import collect_calibration
    from spdy.passes.algo.dp import budget_for
    from spdy.passes.algo.grid import level_index
    from spdy.passes.context import CompileContext, CompileOptions
    from spdy.passes.solve_sparsity import Stitcher
    from spdy.pipelines import search_prep_pipeline
    from spdy.runtime.target import parse_target
    from spdy.runtime.tune import Tuner

    import numpy as np
    from spdy.passes.algo.dp import solve_dp
    from spdy.passes.algo.search import error_table
    keep = None if args.keep_dense == "default" else []
    torch.set_num_threads(2)
    xtr, ytr = load_mnist("train")
    xs, ys = mnist_normalize(xtr[:args.calib]), ytr[:args.calib]
    calib = [(xs[i:i + 128], ys[i:i + 128]) for i in range(0, len(xs), 128)]
    model, x = mnist_cnn(), xs[:1]
    spec = parse_target("host")
    ctx = CompileContext(model=model, inputs=normalize_inputs((x,)), target=spec, workdir=Path("/tmp"),
                         options=CompileOptions(num_threads=2, speedup=args.speedup, keep_dense=keep),
                         tuner=Tuner(target=spec.to_tvm(), num_threads=2))
    ctx.artifacts["calib"] = collect_calibration(calib, (x,), n_samples=args.calib)
    t0 = time.perf_counter()
    gm, _ = search_prep_pipeline(formats=("bsr16x1",), n_samples=args.calib).run(None, ctx)
    prep_s = time.perf_counter() - t0
    table = ctx.artifacts["latency_table"]
    layers = {l.qualname: l for l in ctx.artifacts["layers"]}
    stitcher = Stitcher(gm, table, layers, ctx.artifacts["recon_db"], ctx.artifacts["calib"])
    budget = budget_for(table.base, table.fixed, args.speedup)
    n_layers = len(table.layers)
    lv = level_index(table.options)
    rng = np.random.default_rng(0)
    losses, dp_s, loss_s = [], 0.0, 0.0
    for _ in range(args.evals):
        c = rng.uniform(0, 1, n_layers)
        t0 = time.perf_counter()
        choice = solve_dp(error_table(c, lv), table.times, budget, 10000, base=table.base, fixed=table.fixed)
        t1 = time.perf_counter()
        losses.append(stitcher.loss(choice))
        dp_s += t1 - t0
        loss_s += time.perf_counter() - t1
    search_s = dp_s + loss_s
    out = {"model": "mnist_cnn", "calib_samples": args.calib, "prunable_layers": n_layers, "keep_dense": keep,
           "evals": args.evals, "total_s": round(search_s, 2), "dp_s": round(dp_s, 2), "loss_s": round(loss_s, 2),
           "per_eval_ms": round(1e3 * search_s / args.evals, 2), "prep_s": round(prep_s, 1),
           "loadavg": os.getloadavg()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"{args.evals} evaluations in {search_s:.1f} s (DP {dp_s:.1f} s, stitched loss {loss_s:.1f} s; "
          f"{out['per_eval_ms']} ms each) on {n_layers} layers, {args.calib} calibration samples; "
          f"preparation {prep_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
