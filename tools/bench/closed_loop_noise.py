"""Does the closed loop survive a noisy machine? Ten back-to-back compiles at 2x, one at 3x.

Issue 21 item 8: on the shared 2-vCPU machine, a residual MNIST CNN compiled at 2x had its
round 1 measured at 1.23x against a prediction of 2.02x (a slow stretch); the budget shrank
by that, round 2 was infeasible and the compile raised, while 3x met minutes later. Now
verify-speedup measures again when a round lands far from its prediction or its p10..p90
interval straddles the target (spdy/passes/algo/budget_correction.py).

This bench compiles the residual MNIST CNN (spdy.models.mnist_resnet, trained here for
--train-steps Adam steps at batch 128 as in tools/bench/accuracy.py; or --model mnist_cnn, the
pretrained CNN of the ccexam wheel, which reaches only ~1.5x with its first and last layers
dense) at batch --batch on --threads threads, --n times in a row at --speedup, then once at
--harder, in one process; calibration is --calib real MNIST training images. Per compile it
records the adopted round's predicted and measured speedup, the p10/p90 of the paired
speedup, the rounds, how many measurements the rounds took, whether the target was met or
called infeasible, and the compile time. The target: at least 9 of 10 meet, and none is
called infeasible while the harder target succeeds.

    nice -n 5 .venv/bin/python tools/bench/closed_loop_noise.py                # bsr16x1, tune off
    .venv/bin/python tools/bench/closed_loop_noise.py --formats default --n 5

Writes a table to stdout and JSON to
tools/bench/results/closed_loop_noise_<model>_<date>.json (--out), after every compile.
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


def data(batch: int, n_calib: int, seed: int = 0):
    """(example input [batch,1,28,28], calibration batches of `batch`) from MNIST train, normalised."""
    import torch

    from spdy.data.mnist import load_mnist
    from spdy.models.mnist_cnn import mnist_normalize
    xtr, _ = load_mnist("train")
    idx = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(seed))[: n_calib + batch]
    x = mnist_normalize(xtr[idx])
    return x[:batch].contiguous(), [x[batch + i: batch + i + batch].contiguous() for i in range(0, n_calib, batch)]


def train_mnist_resnet(steps: int, seed: int = 0):
    """spdy.models.mnist_resnet trained for `steps` Adam steps on MNIST (as tools/bench/accuracy.py
    trains it, fewer steps: the bench is about speed, the weights only need to be trained ones)."""
    import torch

    from spdy.data.mnist import load_mnist
    from spdy.models import mnist_resnet
    from spdy.models.mnist_cnn import mnist_normalize
    xtr, ytr = load_mnist("train")
    x = mnist_normalize(xtr)
    model = mnist_resnet(seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        b = torch.randint(0, len(x), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[b]), ytr[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), loss.item()


def one_compile(model, x, calib, speedup: float, args) -> dict:
    import spdy
    from spdy.errors import InfeasibleSpeedupError
    formats = None if args.formats == "default" else tuple(args.formats.split(","))
    t0 = time.perf_counter()
    row = {"requested": speedup}
    try:
        cm = spdy.compile(model, (x,), speedup=speedup, calib=calib, formats=formats, num_threads=args.threads,
                          tune=bool(args.tune), n_samples=args.calib, rounds=args.rounds, grid_levels=args.grid_levels)
    except InfeasibleSpeedupError as e:
        row.update(met=False, infeasible=True, best=round(e.max_speedup, 4), error=str(e).splitlines()[0])
    else:
        r = cm.report
        rounds = r["rounds"]
        v = next((x for x in rounds if x["measured_speedup"] == r["measured_speedup"]), rounds[-1])  # the adopted one
        p10, p90 = (v.get("measured_speedup_p10_p90") or [None, None])
        row.update(met=True, infeasible=False, predicted=round(r["predicted_speedup"], 4),
                   measured=round(r["measured_speedup"], 4), p10=p10, p90=p90, rounds=len(rounds),
                   measurements=[len(x.get("measurements") or [x]) for x in rounds],
                   per_round=[{"predicted": round(x["predicted_speedup"], 4), "measured": round(x["measured_speedup"], 4),
                               "p10_median_p90": x.get("measured_speedup_p10_median_p90"),
                               "remeasured_because": x.get("remeasured_because")} for x in rounds],
                   dense_ms=round(v["dense_artifact"]["median_ms"], 3))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def table(rows: list[dict]) -> str:
    head = f"{'#':>2} {'target':>6} {'pred':>6} {'meas':>6} {'p10':>6} {'p90':>6} {'rounds':>6} {'meas/rnd':>9} {'met':>5} {'s':>6}"
    out = [head]
    f = lambda v: f"{v:6.2f}" if isinstance(v, (int, float)) else f"{'-':>6}"  # noqa: E731
    for i, r in enumerate(rows):
        met = "yes" if r["met"] else ("INF" if r.get("infeasible") else "no")
        out.append(f"{i:>2} {r['requested']:6.1f} {f(r.get('predicted'))} {f(r.get('measured') or r.get('best'))} "
                   f"{f(r.get('p10'))} {f(r.get('p90'))} {r.get('rounds', '-'):>6} "
                   f"{','.join(map(str, r.get('measurements', []))) or '-':>9} {met:>5} {r['seconds']:6.1f}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="mnist_resnet", choices=["mnist_resnet", "mnist_cnn"])
    ap.add_argument("--train-steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--speedup", type=float, default=2.0)
    ap.add_argument("--harder", type=float, default=3.0, help="0: no harder compile")
    ap.add_argument("--formats", default="bsr16x1", help="comma list, or 'default' for spdy's default formats")
    ap.add_argument("--tune", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--grid-levels", type=int, default=41, help="sparsity levels of the table and database")
    ap.add_argument("--calib", type=int, default=256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    import torch

    from spdy.models.mnist_cnn import mnist_cnn
    torch.set_num_threads(args.threads)
    train_loss = None
    if args.model == "mnist_cnn":
        model = mnist_cnn()
    else:
        model, train_loss = train_mnist_resnet(args.train_steps)
    x, calib = data(args.batch, args.calib)
    date = datetime.date.today().isoformat()
    out = Path(args.out or ROOT / "tools" / "bench" / "results" / f"closed_loop_noise_{args.model}_{date}.json")
    doc = {"bench": "closed_loop_noise", "settings": vars(args),
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "loadavg_start": os.getloadavg()},
           "train_loss": train_loss, "rows": []}
    for s in [args.speedup] * args.n + ([args.harder] if args.harder else []):
        row = one_compile(model, x, calib, s, args)
        row["loadavg"] = [round(v, 2) for v in os.getloadavg()]
        doc["rows"].append(row)
        print(json.dumps({k: row.get(k) for k in ("requested", "predicted", "measured", "p10", "p90", "rounds",
                                                     "measurements", "met", "seconds")}), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))
    main_rows = [r for r in doc["rows"] if r["requested"] == args.speedup]
    harder = [r for r in doc["rows"] if r["requested"] == args.harder]
    doc["summary"] = {"met": sum(r["met"] for r in main_rows), "of": len(main_rows),
                      "infeasible": sum(bool(r.get("infeasible")) for r in main_rows),
                      "harder_met": all(r["met"] for r in harder),
                      "target_ok": sum(r["met"] for r in main_rows) >= 0.9 * len(main_rows)
                      and not (any(r.get("infeasible") for r in main_rows) and all(r["met"] for r in harder)),
                      "loadavg_end": os.getloadavg()}
    out.write_text(json.dumps(doc, indent=1))
    print(table(doc["rows"]))
    print(json.dumps(doc["summary"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
