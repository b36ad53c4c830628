"""Structured (mode="channels") compiles and the latency of channel-pruned models (issue 6).

Two parts, each writing JSON to tools/bench/results/:

* ``resnet``: ``spdy.compile(resnet18(), x, speedup=S, mode="channels")`` on 1x3x224x224.
  spdy.models.resnet18 has random weights and the calibration set is random normal images:
  this part is about latency (predicted vs measured speedup per round, widths per group),
  not accuracy. Writes chex_compile_resnet18.json.
* ``mnist``: the pruned residual CNNs of tools/bench/chex.py (the per-group widths recorded
  in results/chex.json; latency depends on shapes only, so the architectures are rebuilt
  from those widths) and torch-pruning's magnitude pruner on the same model at the same
  channel sparsity (when ``pip install --no-deps torch-pruning`` worked): MACs, spdy dense
  artifact latency vs PyTorch eager on 1x1x28x28. Writes chex_compile_mnist.json.

    nice -n 10 .venv/bin/python tools/bench/chex_compile.py resnet [--speedup 2.0] [--tune 1]
        [--ratios 1,0.875,0.75,0.625,0.5,0.375,0.25] [--n-calib 32] [--rounds 3] [--iterations 4]
        [--fill 1] [--anchors 0.7,0.4] [--out PATH]
    nice -n 10 .venv/bin/python tools/bench/chex_compile.py mnist [--threads 1] [--tune 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import spdy  # noqa: E402
from spdy.chex import channel_groups, count_macs, prune_channels  # noqa: E402
from spdy.chex._testmodels import residual_cnn  # noqa: E402

RESULTS = ROOT / "tools" / "bench" / "results"


def _eager_ms(model, x, threads, reps=50):
    from spdy.reference_runtimes import torch_eager_fn
    from spdy.runtime.interleaved import interleaved
    res = interleaved({"eager": torch_eager_fn(model.eval(), (x,), {}, threads)}, rounds=7, min_time_s=0.05)
    return res["eager"]["median_ms"]


def run_resnet(args) -> dict:
    from spdy.api import compile_options, compile_with
    from spdy.compiler.channels import ChannelsStrategy
    from spdy.models import resnet18
    strategy = ChannelsStrategy(ratios=tuple(float(r) for r in args.ratios.split(",")) if args.ratios else None,
                                iterations=args.iterations, fill=bool(args.fill),
                                **({"anchors": tuple(float(r) for r in args.anchors.split(",") if r)}
                                   if args.anchors is not None else {}))
    model, x = resnet18().eval(), torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    calib = [torch.randn(8, 3, 224, 224, generator=g) for _ in range(max(1, args.n_calib // 8))]
    t0 = time.time()
    out = {"bench": "chex_compile_resnet18", "model": "spdy.models.resnet18 (random weights)",
           "input": [1, 3, 224, 224], "calibration": f"{args.n_calib} random normal images (latency only)",
           "speedup": args.speedup, "tune": bool(args.tune), "ratios": strategy.ratios or "default (1.0..0.1)",
           "solver_iterations": strategy.iterations, "widen_fill": strategy.fill, "anchors": strategy.anchors,
           "rounds_max": args.rounds, "host": platform.node(), "torch": torch.__version__}
    try:
        options = compile_options(speedup=args.speedup, mode="channels", tune=bool(args.tune), n_samples=args.n_calib,
                                  rounds=args.rounds, workdir=args.workdir)
        cm = compile_with(model, (x,), options, calib=calib, strategy=strategy)
    except spdy.InfeasibleSpeedupError as e:
        out.update(status="infeasible", error=str(e), wall_s=time.time() - t0)
        if args.workdir:
            out["passlog"] = passlog_rounds(Path(args.workdir) / "passlog.jsonl")
        return out
    r = cm.report
    out.update(status="ok", wall_s=time.time() - t0, compile_s=r["compile_s"],
               predicted_speedup=r.get("predicted_speedup"), measured_speedup=r.get("measured_speedup"),
               rounds=[{k: v for k, v in rd.items() if k not in ("artifact", "dense_artifact", "torch_eager")}
                       | {"artifact_ms": rd["artifact"]["median_ms"], "dense_ms": rd["dense_artifact"]["median_ms"],
                          "torch_eager_ms": rd["torch_eager"]["median_ms"] if rd.get("torch_eager") else None}
                       for rd in r["rounds"]],
               widths=r["channels"]["widths"], macs_dense=count_macs(model, x),
               macs_pruned=count_macs(cm.pruned_model, x), tuner=r.get("tuner"))
    out["passlog"] = [_keep(r) for r in cm.passlog if r["pass"] in PASSLOG_KEEP]
    out["pruned_torch_eager_ms"] = _eager_ms(cm.pruned_model, x, r["threads"])
    out["max_abs_diff_artifact_vs_pruned_model"] = float(
        (torch.as_tensor(cm(x)) - cm.pruned_model(x).detach()).abs().max())
    return out


PASSLOG_KEEP = ("profile-channels", "profile-channel-anchors", "solve-channels", "channel-surgery", "verify-speedup")


def _keep(r: dict) -> dict:
    return {"seq": r["seq"], "pass": r["pass"], "wall_s": r.get("wall_s"), "stats": r.get("stats"), "error": r.get("error")}


def passlog_rounds(path: Path) -> list[dict]:
    """profile/anchor/solve/surgery/verify records of a compile's pass log (what each round predicted and measured)."""
    return [_keep(r) for r in map(json.loads, path.read_text().splitlines()) if r["pass"] in PASSLOG_KEEP]


def _counts_model(widths: dict[str, int]):
    """The bench's residual CNN pruned to the given per-group widths (first channels kept)."""
    model = residual_cnn().eval()
    x = torch.randn(1, 1, 28, 28)
    groups = channel_groups(model, (x,))
    keep = {g.id: list(range(widths[g.name])) for g in groups if g.prunable and g.name in widths}
    small, _ = prune_channels(model, keep, groups=groups)
    return small.eval()


def _torch_pruning(sparsity: float):
    try:
        import torch_pruning as tp
    except ImportError:
        return None, "torch-pruning not installed"
    model = residual_cnn().eval()
    x = torch.randn(1, 1, 28, 28)
    imp = tp.importance.MagnitudeImportance(p=1)
    pruner = tp.pruner.MagnitudePruner(model, x, importance=imp, pruning_ratio=sparsity,
                                       ignored_layers=[model.fc] if hasattr(model, "fc") else [])
    pruner.step()
    return model.eval(), f"torch_pruning {tp.__version__} MagnitudePruner(L1, pruning_ratio={sparsity})"


def run_mnist(args) -> dict:
    data = json.loads((RESULTS / "chex.json").read_text())
    x = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    target = f"llvm -mcpu={_host_cpu()} -num-cores={args.threads}"
    models = [("dense", 0.0, None, residual_cnn().eval(), "")]
    for row in data["rows"]:
        if row["method"] == "chex":
            models.append(("chex", row["sparsity"], row["seed"], _counts_model(row["widths"]),
                           "CHEX widths from results/chex.json (l1/random share them)"))
    for s in sorted({row["sparsity"] for row in data["rows"] if row["method"] == "chex"}):
        m, note = _torch_pruning(s)
        if m is not None:
            models.append(("torch-pruning", s, None, m, note))
        else:
            models.append(("torch-pruning", s, None, None, note))
    rows = []
    for method, s, seed, m, note in models:
        row = {"method": method, "sparsity": s, "seed": seed, "note": note}
        if m is None:
            rows.append(row)
            continue
        cm = spdy.compile(m, (x,), target=target, num_threads=args.threads, tune=bool(args.tune))
        base = cm.report["baseline"]
        row.update(macs=count_macs(m, x), params=sum(p.numel() for p in m.parameters()),
                   spdy_artifact_ms=base["dense_artifact"]["median_ms"], torch_eager_ms=base["torch_eager"]["median_ms"],
                   artifact_vs_eager=base["speedup_vs_torch_eager"],
                   max_abs_diff=float((torch.as_tensor(cm(x)) - m(x).detach()).abs().max()))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {"bench": "chex_compile_mnist", "input": [1, 1, 28, 28], "threads": args.threads,
            "tune": bool(args.tune), "target": target, "host": platform.node(), "torch": torch.__version__,
            "latency_note": "weights do not affect dense latency: pruned architectures rebuilt from widths",
            "rows": rows}


def _host_cpu() -> str:
    from spdy.runtime.target import parse_target
    return parse_target("host").canonical().split("mcpu=")[-1].split()[0] if "mcpu=" in parse_target(
        "host").canonical() else "znver3"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["resnet", "mnist"])
    ap.add_argument("--speedup", type=float, default=2.0)
    ap.add_argument("--tune", type=int, default=1)
    ap.add_argument("--ratios", default="")
    ap.add_argument("--n-calib", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--fill", type=int, default=1)
    ap.add_argument("--anchors", default=None, help="anchor keep-ratios, e.g. 0.7,0.4 ('' for none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    res = run_resnet(args) if args.part == "resnet" else run_mnist(args)
    out = Path(args.out) if args.out else RESULTS / (
        "chex_compile_resnet18.json" if args.part == "resnet" else "chex_compile_mnist.json")
    out.write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1, default=str)[:4000])
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
