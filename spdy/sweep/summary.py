"""A few numbers that say whether a sweep shows the paper's four phases.

Heuristic, for the closing note and the CLI line, not a statistical test: the *peak* is
the best test accuracy; the *critical dip* is the worst test accuracy strictly between
the dense level and the peak; the *collapse* is the last level's accuracy. The four
phases are "seen" when the dip is below the dense model, the peak above it, and the last
level below the peak, each by more than `tol` (absolute accuracy).
"""
from __future__ import annotations


def summarize(levels: list[dict], tol: float = 0.002) -> dict:
    if not levels:
        return {}
    acc = [r["test_acc"] for r in levels]
    dense = acc[0]
    peak = max(range(len(acc)), key=acc.__getitem__)
    between = range(1, peak)
    dip = min(between, key=acc.__getitem__) if len(between) else None
    last = len(acc) - 1
    out = {
        "dense_test_acc": dense,
        "peak": {"level": peak, "sparsity": levels[peak]["sparsity"], "test_acc": acc[peak]},
        "dip": None if dip is None else
        {"level": dip, "sparsity": levels[dip]["sparsity"], "test_acc": acc[dip]},
        "last": {"level": last, "sparsity": levels[last]["sparsity"], "test_acc": acc[last]},
    }
    out["four_phases_seen"] = bool(
        dip is not None and acc[dip] < dense - tol and acc[peak] > dense + tol
        and acc[last] < acc[peak] - tol
    )
    return out
