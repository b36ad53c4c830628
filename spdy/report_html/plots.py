"""The report's plots: matplotlib figures from the rows of data.py, as SVG text or PNG files.

matplotlib is imported inside `_plt` (Agg backend, no display needed), so `import spdy` and
`spdy.load` never pay for it. SVG text stays text (`svg.fonttype = none`) and carries no date
or random ids, so the same artifact gives the same report. Every function returns a Figure
or None when there is nothing to draw.
"""
from __future__ import annotations

import io
import math
import re

COLORS = {"before": "#9aa5b1", "after": "#1f6feb", "measured": "#1f6feb", "predicted": "#d29922",
          "target": "#cf222e", "calibrated": "#8250df"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "spdy-report", "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _fixed_margins(fig, *, left: float, bottom: float, top: float = 0.45, right: float = 0.2) -> None:
    """Margins in inches, set from the labels' lengths: the big plots (a ResNet-50 has 54 rows
    and 124 option columns) are then drawn once; bbox_inches="tight" draws them twice to
    measure the labels, which doubled the report's time."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=min(left / w, 0.6), right=1 - right / w, bottom=min(bottom / h, 0.6), top=1 - top / h)
    fig.spdy_fixed_layout = True


def _label_in(labels, pt: float) -> float:
    """Inches a row of tick labels of `pt` points needs (0.6 em per character)."""
    return max((len(str(t)) for t in labels), default=1) * 0.6 * pt / 72 + 0.15


def to_svg(fig) -> str:
    """The figure as an inline <svg> element (no XML prolog, no doctype, no comments)."""
    plt = _plt()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches=None if getattr(fig, "spdy_fixed_layout", False) else "tight",
                metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"<\?xml[^>]*\?>", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>", "", text, flags=re.S)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)   # RDF boilerplate
    return text.strip()


def to_png(fig, path) -> None:
    plt = _plt()
    fig.savefig(path, format="png", dpi=130, bbox_inches=None if getattr(fig, "spdy_fixed_layout", False) else "tight")
    plt.close(fig)


def latency_bars(summary: dict):
    """End-to-end latency: the artifact, the dense artifact, PyTorch eager, onnxruntime."""
    items = [(k, v) for k, v in summary["latency_ms"].items() if v is not None]
    if not items:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(items) + 0.9))
    names, vals = zip(*items)
    colors = ["#1f6feb" if n == "spdy artifact" else "#9aa5b1" for n in names]
    ax.barh(range(len(vals)), vals, color=colors)
    ax.set_yticks(range(len(vals)), names)
    ax.invert_yaxis()
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:.3g} ms", va="center")
    ax.set_xlabel("latency (ms, median)")
    ax.set_xlim(0, max(vals) * 1.25)
    ax.set_title("end-to-end latency, same input")
    return fig


def layer_shares(rows: list[dict]):
    """Each layer's share of latency before (dense) and after, in network order."""
    rows = [r for r in rows if r["share_before"] is not None or r["share_after"] is not None]
    if not rows:
        return None
    plt = _plt()
    n = len(rows)
    fig, ax = plt.subplots(figsize=(7.5, 0.2 * n + 1.2))
    y = range(n)
    ax.barh([i - 0.2 for i in y], [100 * (r["share_before"] or 0) for r in rows], height=0.4,
            color=COLORS["before"], label="dense artifact")
    ax.barh([i + 0.2 for i in y], [100 * (r["share_after"] or 0) for r in rows], height=0.4,
            color=COLORS["after"], label="artifact")
    labels = [f"{r['layer']}  [{_option(r)}]" for r in rows]
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("share of latency (%)")
    ax.legend(loc="lower right")
    ax.set_title("latency per layer, network order")
    _fixed_margins(fig, left=_label_in(labels, 7), bottom=0.55, top=0.35)
    return fig


def _option(r: dict) -> str:
    if r["format"] == "channels":
        return f"channels {r['kept']}" if r["kept"] else "channels"
    return f"{r['format']} {r['level']:.0%}" if r["level"] else r["format"]


def rounds_plot(rows: list[dict], target: float | None):
    """Predicted vs measured speedup per correction round, p10..p90 as error bars."""
    rows = [r for r in rows if r["measured"] is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    x = [r["round"] for r in rows]
    meas = [r["measured"] for r in rows]
    lo = [r["measured"] - (r["p10_p90"] or [r["measured"]] * 2)[0] for r in rows]
    hi = [(r["p10_p90"] or [r["measured"]] * 2)[1] - r["measured"] for r in rows]
    ax.errorbar(x, meas, yerr=[[max(v, 0) for v in lo], [max(v, 0) for v in hi]], fmt="o-", capsize=4,
                color=COLORS["measured"], label="measured (p10..p90)")
    pred = [(r["round"], r["predicted"]) for r in rows if r["predicted"] is not None]
    if pred:
        ax.plot(*zip(*pred), "s--", color=COLORS["predicted"], label="predicted")
    cal = [(r["round"], r["calibrated_predicted"]) for r in rows if r["calibrated_predicted"] is not None]
    if cal:
        ax.plot(*zip(*cal), "^:", color=COLORS["calibrated"], label="predicted after in-place calibration")
    if target:
        ax.axhline(target, color=COLORS["target"], lw=1, label=f"target {target:g}x")
    for r in rows:
        if r["adopted"]:
            ax.annotate("adopted", (r["round"], r["measured"]), textcoords="offset points", xytext=(6, 6))
    ax.set_xticks(x)
    ax.set_xlabel("round")
    ax.set_ylabel("speedup over the dense artifact")
    ax.legend(fontsize=7)
    ax.set_title("correction rounds")
    return fig


def heatmap(table: dict, times_key: str = "times_ms", title: str = "latency table"):
    """layers x options, each cell the option's time over the layer's dense time (green: faster,
    red: slower, 2x and more saturate); the chosen option of each layer is circled. Blank: an
    option the target cannot run, or a layer kept dense (no sparse options timed)."""
    times = table.get(times_key)
    if not times or not table.get("options"):
        return None
    import numpy as np
    plt = _plt()
    t = np.array([[math.nan if v is None else v for v in row] for row in times], dtype=float)
    dense = t[:, :1]
    rel = np.where(dense > 0, t / np.where(dense > 0, dense, 1), np.nan)
    n, m = rel.shape
    fig, ax = plt.subplots(figsize=(min(max(6.0, 0.11 * m + 2.5), 16), 0.2 * n + 1.8))
    from matplotlib.colors import TwoSlopeNorm
    finite = rel[np.isfinite(rel)]
    low = float(min(finite.min(), 0.9)) if finite.size else 0.1
    # centred on the dense time (1): green faster, red slower; slower than 2x saturates, so
    # one pathological option (a 30x slower int8 block kernel) does not wash out the rest
    im = ax.imshow(rel, aspect="auto", cmap="RdYlGn_r", norm=TwoSlopeNorm(vcenter=1.0, vmin=low, vmax=2.0),
                   interpolation="nearest")
    chosen = [(j, i) for i, j in enumerate(table.get("chosen") or []) if j is not None]
    if chosen:
        ax.scatter(*zip(*chosen), s=26, facecolors="none", edgecolors="#cf222e", linewidths=1.4)
        title += " (circled: the option chosen)"
    labels = table["options"]
    step = max(1, m // 40)
    ax.set_xticks(range(0, m, step), [labels[j] for j in range(0, m, step)], rotation=90, fontsize=6)
    ax.set_yticks(range(n), table["layers"], fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, extend="max", label="time / layer's dense time")
    ax.set_title(title, loc="left")
    ax.spines[:].set_visible(False)
    _fixed_margins(fig, left=_label_in(table["layers"], 7), bottom=_label_in(labels, 6) + 0.1, top=0.45,
                   right=0.9)
    return fig


def pass_timeline(rows: list[dict]):
    """The passes as bars on the compile's clock (wall times back to back, in run order)."""
    rows = [r for r in rows if r["wall_s"] > 0]
    if not rows:
        return None
    plt = _plt()
    names = list(dict.fromkeys(r["pass"] for r in rows))
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * len(names) + 1.2))
    for r in rows:
        i = names.index(r["pass"])
        ax.barh(i, r["wall_s"], left=r["start_s"], color="#cf222e" if r["status"] not in ("ok", "") else cmap(i % 20))
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first pass")
    ax.set_title("pass timeline")
    return fig


def channel_widths(rows: list[dict]):
    """mode='channels': each coupling group's kept width against its full width."""
    rows = [r for r in rows if r["kept"] is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 0.25 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh(list(y), [r["size"] or r["kept"] for r in rows], color=COLORS["before"], label="full width")
    ax.barh(list(y), [r["kept"] for r in rows], color=COLORS["after"], height=0.5, label="kept")
    ax.set_yticks(list(y), [r["group"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("channels")
    ax.legend(loc="lower right")
    ax.set_title("widths per coupling group")
    return fig


def sweep_plot(sweep: dict):
    """A sweep's test accuracy and train accuracy (noisy labels) against sparsity."""
    levels = [lv for lv in sweep.get("levels") or [] if "sparsity" in lv]
    if not levels:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    x = [100 * lv["sparsity"] for lv in levels]
    for key, label, style in (("test_acc", "test", "o-"), ("train_acc_noisy", "train (noisy labels)", "s--"),
                              ("train_acc_true", "train (true labels)", "^:")):
        ys = [lv.get(key) for lv in levels]
        if all(v is not None for v in ys):
            ax.plot(x, [100 * v for v in ys], style, ms=3, label=label)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("sparse double descent sweep")
    return fig
