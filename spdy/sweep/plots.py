"""PNG plots in the layout of the paper's Figures 5 and 9.

The x axis is sparsity on a log scale of the *remaining* weights (100% -> 0.1%), so the
20%-per-level steps are evenly spaced and the high-sparsity phases are readable; ticks are
labelled with sparsity in percent, as in the paper.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402


def _sparsity_axis(ax, levels: list[dict]) -> list[float]:
    remaining = [max(100.0 * (1.0 - r["sparsity"]), 1e-3) for r in levels]
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = [t for t in (100, 50, 10, 5, 1, 0.5, 0.1) if t >= min(remaining) * 0.9]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 - v:g}"))
    ax.set_xlabel("sparsity (%)")
    ax.grid(True, alpha=0.3)
    return remaining


def _save(fig, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)


def plot_accuracy(levels: list[dict], path: Path, title: str = "") -> None:
    """Train accuracy (noisy and true labels) and test accuracy vs sparsity (Figure 5)."""
    fig, (ax_tr, ax_te) = plt.subplots(1, 2, figsize=(10, 4))
    for ax in (ax_tr, ax_te):
        x = _sparsity_axis(ax, levels)
    ax_tr.plot(x, [100 * r["train_acc_noisy"] for r in levels], "o-", ms=3, label="train (noisy labels)")
    ax_tr.plot(x, [100 * r["train_acc_true"] for r in levels], "s--", ms=3, label="train (true labels)")
    ax_tr.set_ylabel("train accuracy (%)")
    ax_tr.legend()
    ax_te.plot(x, [100 * r["test_acc"] for r in levels], "o-", ms=3, color="tab:red", label="test")
    ax_te.axhline(100 * levels[0]["test_acc"], color="gray", ls=":", label="dense")
    ax_te.set_ylabel("test accuracy (%)")
    ax_te.legend()
    if title:
        fig.suptitle(title)
    _save(fig, path)


def plot_learning_distance(levels: list[dict], path: Path, title: str = "") -> None:
    """Learning distance (left, blue) and test accuracy (right, red) vs sparsity (Figure 9)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    x = _sparsity_axis(ax, levels)
    ax.plot(x, [r["learning_distance"] for r in levels], "o-", ms=3, color="tab:blue")
    ax.set_ylabel("learning distance ||w_init - w_learned||_2", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, [100 * r["test_acc"] for r in levels], "s--", ms=3, color="tab:red")
    ax2.set_ylabel("test accuracy (%)", color="tab:red")
    if title:
        ax.set_title(title)
    _save(fig, path)


def plot_all(levels: list[dict], out_dir: Path, title: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    if not levels:
        return []
    paths = [out_dir / "accuracy.png", out_dir / "learning_distance.png"]
    plot_accuracy(levels, paths[0], title)
    plot_learning_distance(levels, paths[1], title)
    return paths
