"""CHEX vs. dense-train + L1-prune + finetune vs. random pruning on MNIST (issue 6).

Model: the residual CNN of spdy.chex._testmodels (widths 16/32/64, one BasicBlock per stage),
trained from scratch. For each channel sparsity S:
  * chex:   spdy.chex.train for E epochs (prune-regrow with CSS, BN re-allocation), then surgery;
  * l1:     dense model trained for D epochs, pruned by group L1 norm, finetuned for F epochs;
  * random: the same dense model, random channels, finetuned for F epochs;
  * torch-pruning (when `pip install --no-deps torch-pruning` worked): the same dense model
    pruned by torch-pruning's L1 MagnitudePruner, one ratio for every layer, bisected so the
    pruned model has CHEX's MACs, finetuned for F epochs.
"Same FLOPs": l1 and random keep exactly CHEX's final per-group channel counts, so all three
pruned models have the same widths and MACs; torch-pruning matches the MACs, not the widths.
`--methods torch-pruning --chex-from results/chex.json` adds rows to an earlier run: the
dense model is trained again with the same seed and recipe, CHEX's widths and MACs are read
from the file, and the other methods' rows are carried over. The budget is stated in the JSON (E vs D + F).
Reports MNIST test accuracy, MACs, parameters and PyTorch eager latency (batch 1, median).

    nice -n 19 python tools/bench/chex.py [--n-train 20000] [--epochs 4] [--dense-epochs 3]
        [--finetune-epochs 1] [--sparsities 0.5,0.7] [--seeds 0,1] [--threads 1] [--out PATH]
        [--methods chex,l1,random,torch-pruning] [--chex-from PATH]
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from spdy.chex import (channel_groups, count_macs, get_importance, prune_channels,  # noqa: E402
                       train)
from spdy.chex._testmodels import residual_cnn  # noqa: E402
from spdy.passes.algo.css import top_k  # noqa: E402


def load_data(n_train: int, seed: int):
    try:
        from spdy.data.mnist import load_mnist
        xtr, ytr = load_mnist("train")
        xte, yte = load_mnist("test")
        source = "mnist"
    except Exception as exc:  # noqa: BLE001 - fall back to digits when MNIST is missing
        print(f"MNIST unavailable ({exc}); using sklearn digits", file=sys.stderr)
        from sklearn.datasets import load_digits
        d = load_digits()
        x = F.interpolate(torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16, size=28)
        y = torch.tensor(d.target)
        xtr, ytr, xte, yte = x[:1400], y[:1400], x[1400:], y[1400:]
        source = "digits"
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(xtr), generator=g)[:n_train]
    mean, std = 0.1307, 0.3081
    return (xtr[idx] - mean) / std, ytr[idx], (xte - mean) / std, yte, source


def loader(x, y, batch, seed):
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(seed))


def fit(model, dl, epochs: int, lr: float) -> None:
    """Plain SGD + cosine schedule (used for the dense baseline and the finetunes)."""
    if epochs <= 0:
        return
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    total = epochs * len(dl)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    model.train()
    for _ in range(epochs):
        for x, y in dl:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


@torch.no_grad()
def accuracy(model, x, y, batch=1000) -> float:
    model.eval()
    right = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return right / len(x)


@torch.no_grad()
def eager_latency_ms(model, rounds: int = 7, reps: int = 40) -> float:
    """Min over rounds of the median batch-1 latency: the shared CPU makes single medians noisy."""
    model.eval()
    x = torch.randn(1, 1, 28, 28)
    for _ in range(20):
        model(x)
    medians = []
    for _ in range(rounds):
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        medians.append(statistics.median(times))
    return 1e3 * min(medians)


def describe(model, x_te, y_te) -> dict:
    return {"test_acc": accuracy(model, x_te, y_te),
            "macs": count_macs(model, torch.zeros(1, 1, 28, 28)),
            "params": sum(p.numel() for p in model.parameters()),
            "eager_ms": eager_latency_ms(model)}


def prune_like(dense, groups, counts: dict[int, int], criterion: str, seed: int):
    """Prune `dense` to the given per-group counts, choosing channels by `criterion`."""
    imp = get_importance(criterion, seed)
    keep = {g.id: top_k(imp(dense, g, counts[g.id]), counts[g.id]).tolist() for g in groups if g.id in counts}
    small, _ = prune_channels(dense, keep, groups=groups)
    return small


def torch_pruning_like(dense, macs_target: int, fc_name: str = "fc"):
    """(model, note): torch-pruning's L1 MagnitudePruner on a copy of `dense`, one pruning ratio
    for every layer, bisected until the pruned model's MACs match `macs_target`; (None, why)
    when torch-pruning is not installed."""
    try:
        import torch_pruning as tp
    except ImportError:
        return None, "torch-pruning not installed"
    x = torch.zeros(1, 1, 28, 28)

    def prune(ratio: float):
        m = copy.deepcopy(dense).eval()
        ignored = [getattr(m, fc_name)] if hasattr(m, fc_name) else []
        tp.pruner.MagnitudePruner(m, x, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=ratio,
                                  ignored_layers=ignored).step()
        return m

    lo, hi = 0.0, 0.95
    for _ in range(16):
        mid = (lo + hi) / 2
        if count_macs(prune(mid), x) > macs_target:
            lo = mid
        else:
            hi = mid
    # channel counts are integers, so MACs move in steps: take the side of the step nearer CHEX's
    ratio = min((lo, hi), key=lambda r: abs(count_macs(prune(r), x) - macs_target))
    return prune(ratio), f"torch_pruning {tp.__version__} MagnitudePruner(L1), ratio {ratio:.4f} for every layer"


def _finetuned(method, small, s, tag, dl, args, x_te, y_te, **extra) -> dict:
    acc0 = accuracy(small, x_te, y_te)
    t0 = time.time()
    fit(small, dl, args.finetune_epochs, args.lr * 0.1)
    return {"method": f"{method}+finetune", "sparsity": s, **tag, "acc_before_finetune": acc0,
            "train_s": time.time() - t0, **extra, **describe(small, x_te, y_te)}


def run_seed(args, seed: int, earlier: list[dict] | None = None) -> list[dict]:
    """Dense baseline, then per sparsity CHEX and the prune-finetune baselines (`--methods`);
    with `earlier` rows (--chex-from), CHEX's widths and MACs come from them instead."""
    methods = set(args.methods.split(","))
    x_tr, y_tr, x_te, y_te, source = load_data(args.n_train, seed)
    dl = loader(x_tr, y_tr, args.batch, seed)
    tag = {"seed": seed, "data": source}
    torch.manual_seed(seed)
    dense = residual_cnn()
    t0 = time.time()
    fit(dense, dl, args.dense_epochs, args.lr)
    rows = [{"method": "dense", "sparsity": 0.0, **tag, "train_s": time.time() - t0,
             **describe(dense, x_te, y_te)}]
    groups = channel_groups(dense, x_te[:2])
    for s in [float(v) for v in args.sparsities.split(",")]:
        if earlier is not None:
            chex_row = next(r for r in earlier if r["method"] == "chex" and r["sparsity"] == s and r["seed"] == seed)
        else:
            torch.manual_seed(seed)
            model = residual_cnn()
            t0 = time.time()
            res = train(model, dl, channel_sparsity=s, epochs=args.epochs, delta0=args.delta0,
                        delta_t_epochs=args.delta_t_epochs, t_max_epochs=args.t_max_frac * args.epochs,
                        lr=args.lr, seed=seed, progress=sys.stderr.isatty())
            chex_row = {"method": "chex", "sparsity": s, **tag, "achieved_channel_sparsity": res.channel_sparsity,
                        "train_s": time.time() - t0, "widths": res.log["final"]["channels"],
                        **describe(res.model, x_te, y_te)}
            rows.append(chex_row)
        final = chex_row["widths"]  # group name -> kept count (same names as `groups`)
        counts = {g.id: final[g.name] for g in groups if g.prunable}
        for crit in ("l1", "random"):
            if crit in methods:
                rows.append(_finetuned(crit, prune_like(dense, groups, counts, crit, seed), s, tag, dl, args,
                                       x_te, y_te))
        if "torch-pruning" in methods:
            small, note = torch_pruning_like(dense, chex_row["macs"])
            if small is not None:
                rows.append(_finetuned("torch-pruning", small, s, tag, dl, args, x_te, y_te, note=note))
            else:
                print(f"torch-pruning rows skipped: {note}", file=sys.stderr)
        _print(rows)
    return rows


def summary(rows) -> list[dict]:
    """Mean/min/max test accuracy per (method, sparsity) over seeds."""
    out = {}
    for r in rows:
        out.setdefault((r["method"], r["sparsity"]), []).append(r)
    return [{"method": m, "sparsity": s, "seeds": len(rs),
             "test_acc_mean": statistics.mean(r["test_acc"] for r in rs),
             "test_acc_min": min(r["test_acc"] for r in rs), "test_acc_max": max(r["test_acc"] for r in rs),
             "macs_mean": statistics.mean(r["macs"] for r in rs),
             "eager_ms_median": statistics.median(r["eager_ms"] for r in rs)} for (m, s), rs in out.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=4, help="CHEX epochs (from scratch)")
    ap.add_argument("--dense-epochs", type=int, default=3)
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--sparsities", default="0.5,0.7")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--delta0", type=float, default=0.3)
    ap.add_argument("--delta-t-epochs", type=float, default=0.25)
    ap.add_argument("--t-max-frac", type=float, default=0.72)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", default="0", help="comma-separated; each seed reruns everything")
    ap.add_argument("--methods", default="chex,l1,random,torch-pruning")
    ap.add_argument("--chex-from", default=None, help="an earlier chex.json: take CHEX's rows from it")
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results" / "chex.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.time()
    rows = []
    earlier = json.loads(Path(args.chex_from).read_text())["rows"] if args.chex_from else None
    for seed in [int(v) for v in args.seeds.split(",")]:
        rows += run_seed(args, seed, earlier)
    if earlier is not None:   # carry over what was not re-run (the dense rows are replaced)
        redone = {(r["method"], r["sparsity"], r["seed"]) for r in rows}
        rows = [r for r in earlier if (r["method"], r["sparsity"], r["seed"]) not in redone] + rows
    out = {"bench": "chex", "model": "spdy.chex._testmodels.residual_cnn()", "n_train": args.n_train,
           "budget_epochs": {"chex": args.epochs, "dense": args.dense_epochs, "finetune": args.finetune_epochs},
           "same_flops": "l1/random keep CHEX's final per-group channel counts; torch-pruning matches CHEX's MACs with one ratio for all layers",
           "args": vars(args), "host": platform.node(), "torch": torch.__version__,
           "threads": args.threads, "wall_s": time.time() - t_start, "summary": summary(rows), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    _print(rows)
    for r in out["summary"]:
        print(f"{r['method']:<16}{r['sparsity']:>5.2f}  mean {100 * r['test_acc_mean']:.2f}%  "
              f"[{100 * r['test_acc_min']:.2f}, {100 * r['test_acc_max']:.2f}]  seeds={r['seeds']}")
    print(f"wrote {args.out}")


def _print(rows) -> None:
    print(f"{'method':<16}{'S':>5}{'seed':>5}{'test acc':>10}{'MMACs':>9}{'params':>9}{'eager ms':>10}{'train s':>9}")
    for r in rows:
        print(f"{r['method']:<16}{r['sparsity']:>5.2f}{r['seed']:>5}{100 * r['test_acc']:>9.2f}%{r['macs'] / 1e6:>9.3f}"
              f"{r['params']:>9}{r['eager_ms']:>10.3f}{r['train_s']:>9.1f}")


if __name__ == "__main__":
    main()
