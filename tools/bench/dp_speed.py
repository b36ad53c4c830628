"""Time spdy's DP solver (SPDY Algorithm 1) at the paper's size: L=52, |S|=42, B=10,000.

Target (issue 5): under 50 ms per solve. Prints a table and writes
tools/bench/results/dp_speed.json. Run: python tools/bench/dp_speed.py [--repeats N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from spdy.passes.algo.dp import budget_for, solve_dp  # noqa: E402
from spdy.passes.algo.grid import sparsity_levels  # noqa: E402


def instance(L: int, S: int, seed: int):
    """Realistic tables: time falls with density, error = c * (i/(S-1))**2 (Algorithm 4)."""
    rng = np.random.default_rng(seed)
    dens = 1 - sparsity_levels(count=S - 1)
    dense_t = rng.uniform(0.2, 2.0, L)
    times = dense_t[:, None] * (0.15 + 0.85 * dens[None, :]) * rng.uniform(0.95, 1.05, (L, S))
    times[:, 0] = dense_t
    errors = rng.uniform(0, 1, (L, 1)) * (np.arange(S) / (S - 1)) ** 2
    fixed = 0.1 * dense_t.sum()
    return errors, times, dense_t.sum() + fixed, fixed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "dp_speed.json"))
    args = ap.parse_args()
    rows = []
    for L, S, B in [(52, 42, 10000), (52, 124, 10000), (20, 42, 10000), (52, 42, 1000)]:
        E, T, base, fixed = instance(L, S, seed=0)
        budget = budget_for(base, fixed, 2.0)
        solve_dp(E, T, budget, B)  # warm up
        ts = []
        for r in range(args.repeats):
            c = np.random.default_rng(r).uniform(0, 1, (L, 1))
            t0 = time.perf_counter()
            solve_dp(E * c, T, budget, B)
            ts.append(time.perf_counter() - t0)
        rows.append({"L": L, "S": S, "buckets": B, "repeats": args.repeats,
                     "median_ms": 1e3 * statistics.median(ts), "min_ms": 1e3 * min(ts),
                     "p90_ms": 1e3 * float(np.percentile(ts, 90))})
    print(f"{'L':>4} {'S':>4} {'B':>6} {'median ms':>10} {'min ms':>8} {'p90 ms':>8}")
    for r in rows:
        print(f"{r['L']:>4} {r['S']:>4} {r['buckets']:>6} {r['median_ms']:>10.2f} "
              f"{r['min_ms']:>8.2f} {r['p90_ms']:>8.2f}")
    target = rows[0]["median_ms"] < 50.0
    print(f"target (L=52, S=42, B=10000 under 50 ms): {'met' if target else 'MISSED'}")
    out = {"rows": rows, "target_ms": 50.0, "target_met": target,
           "numpy": np.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "cpu_count": os.cpu_count(),
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
