"""`spdy sweep`: command-line front end of run_sweep.

main(argv) returns the exit code instead of calling sys.exit, so the `spdy` command can
mount it as a subcommand and tests can call it directly: 0 ok, 2 usage/config error,
1 any other SpdyError.
"""
from __future__ import annotations

import argparse
import sys

from spdy.errors import SpdyError
from spdy.sweep.config import CRITERIA, NOISE_TYPES, PRESETS, RETRAIN, SweepConfigError, preset

# CLI flag -> SweepConfig field, for flags that override the preset when given.
_OVERRIDES = {
    "model": "model", "dataset": "dataset", "noise": "noise", "noise_rate": "noise_rate",
    "criterion": "criterion", "retrain": "retrain", "rewind_epoch": "rewind_epoch",
    "prune_fraction": "prune_fraction", "levels": "levels", "epochs_dense": "epochs_dense",
    "epochs_per_level": "epochs_per_level", "lr": "lr", "momentum": "momentum",
    "batch_size": "batch_size", "seed": "seed", "train_subset": "train_subset",
}


def build_parser(prog: str = "spdy sweep") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Sparse double descent study: train dense with label noise, prune "
                    "iteratively, retrain, and plot accuracy / learning distance vs sparsity. "
                    "Rerunning with the same -o resumes from the last finished level.")
    p.add_argument("--preset", default="tiny", help=f"one of {', '.join(PRESETS)} (default tiny)")
    p.add_argument("-o", "--out", required=True, help="output directory (created; resumable)")
    p.add_argument("--levels", type=int, help="pruning levels after the dense run")
    p.add_argument("--epochs", type=int, help="epochs for the dense run and every level")
    p.add_argument("--epochs-dense", type=int)
    p.add_argument("--epochs-per-level", type=int)
    p.add_argument("--noise", help=f"label noise type: {', '.join(NOISE_TYPES)}")
    p.add_argument("--noise-rate", type=float, help="fraction of labels changed, in [0, 1)")
    p.add_argument("--criterion", help=f"pruning criterion: {', '.join(CRITERIA)}")
    p.add_argument("--retrain", help=f"retraining after pruning: {', '.join(RETRAIN)}")
    p.add_argument("--rewind-epoch", type=int, help="dense epoch to rewind to (0 = init)")
    p.add_argument("--prune-fraction", type=float, help="fraction of remaining weights pruned per level")
    p.add_argument("--model", help="lenet300, mlp:H1,H2,... or cnn-tiny")
    p.add_argument("--dataset", help="mnist or digits")
    p.add_argument("--lr", type=float)
    p.add_argument("--momentum", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--train-subset", type=int, help="use only the first N training examples")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def config_from_args(args: argparse.Namespace):
    cfg = preset(args.preset)
    changes = {field: getattr(args, flag) for flag, field in _OVERRIDES.items()
               if getattr(args, flag) is not None}
    if args.epochs is not None:
        changes.setdefault("epochs_dense", args.epochs)
        changes.setdefault("epochs_per_level", args.epochs)
    return cfg.replace(**changes)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    try:
        cfg = config_from_args(args)
        if args.threads:
            import torch
            torch.set_num_threads(args.threads)
        from spdy.sweep.runner import run_sweep
        result = run_sweep(cfg, args.out, progress=not args.no_progress)
    except SweepConfigError as e:
        print(f"spdy sweep: error: {e}", file=sys.stderr)
        return 2
    except SpdyError as e:
        print(f"spdy sweep: error: {e}", file=sys.stderr)
        return e.exit_code
    dense, best = result.levels[0], result.best
    print(f"{len(result.levels) - 1} levels; dense test acc {dense['test_acc']:.4f}; "
          f"best {best['test_acc']:.4f} at sparsity {best['sparsity']:.4f} (level {best['level']})")
    print(f"wrote {args.out}/results.json, accuracy.png, learning_distance.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
