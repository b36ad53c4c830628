"""Run the lenet300-mnist sweep on a CPU budget and publish its small outputs.

    nice -n 19 python tools/sweep_lenet300.py --epochs 50 --levels 26 --train-subset 12000
    python tools/sweep_lenet300.py --report-only     # re-publish from the work dir

The per-level checkpoints (about 1 MB each) stay in --work-dir; only results.json,
config.json, curve.md and the two PNGs go to --results-dir. Resumable like any sweep.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from spdy.sweep import SweepConfig, preset, run_sweep
from spdy.sweep.plots import plot_all
from spdy.sweep.state import last_finished_level, level_paths, read_json, write_json
from spdy.sweep.summary import summarize


def publish(work: Path, dest: Path) -> dict:
    cfg = SweepConfig.from_json(read_json(work / "config.json"))
    levels = [read_json(level_paths(work, lv)[1]) for lv in range(last_finished_level(work) + 1)]
    dest.mkdir(parents=True, exist_ok=True)
    summary = summarize(levels)
    total_s = sum(r["seconds"] for r in levels)
    write_json(dest / "results.json", {"config": cfg.to_json(), "levels": levels,
                                       "summary": summary, "total_seconds": total_s})
    shutil.copyfile(work / "config.json", dest / "config.json")
    title = (f"LeNet-300-100, MNIST ({cfg.train_subset or 60000} train), "
             f"{cfg.noise_rate:.0%} {cfg.noise} noise, {cfg.epochs_per_level} ep/level, {cfg.retrain}")
    plot_all(levels, dest, title)
    lines = ["| level | sparsity % | train acc (noisy) | train acc (true) | test acc | test loss | learning dist | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in levels:
        lines.append(f"| {r['level']} | {100 * r['sparsity']:.2f} | {100 * r['train_acc_noisy']:.2f} | "
                     f"{100 * r['train_acc_true']:.2f} | {100 * r['test_acc']:.2f} | {r['test_loss']:.3f} | "
                     f"{r['learning_distance']:.2f} | {r['seconds']:.0f} |")
    lines += ["", "```", json.dumps(summary, indent=2), "```", f"total training time {total_s / 60:.1f} min"]
    (dest / "curve.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", default="/tmp/spdy_sweep_lenet300")
    p.add_argument("--results-dir", default=str(Path(__file__).parent / "bench/results/sweep_lenet300"))
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--levels", type=int, default=26)
    p.add_argument("--train-subset", type=int, default=12000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    work = Path(a.work_dir)
    if not a.report_only:
        torch.set_num_threads(a.threads)
        cfg = preset("lenet300-mnist").replace(epochs_dense=a.epochs, epochs_per_level=a.epochs,
                                               levels=a.levels, train_subset=a.train_subset)
        t = time.time()
        run_sweep(cfg, work, progress=True)
        print(f"sweep took {time.time() - t:.0f} s", file=sys.stderr)
    print(json.dumps(publish(work, Path(a.results_dir)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
