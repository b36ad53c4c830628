"""Does this machine hold one speed? Two fixed artifacts timed alternately for minutes.

The speedup spdy promises is a ratio measured on the target. On the 2-vCPU development VMs
that ratio is not one number: for stretches of ten seconds and more, block-sparse kernels run
about 1.5x slower while the dense ones barely change, so the same pair of artifacts measures
3.1x or 2.15x. A compile's verify-speedup takes about a second per round and lands in one of
those states; calibrate-table refuses a round whose layers all shifted together.

This bench builds the dense ResNet-18 artifact and a uniform bsr16x1 one (every conv but the
stem, --sparsity), then, in a child process per thread-pool setting (TVM reads its settings
once per process), times them alternately (--n calls each) for --seconds and records every
pair's ratio. It prints each setting's median and p10/p90 and the fraction of pairs in the slow
state (ratio below --slow-below times the median of the fast half), and writes JSON.

    python tools/bench/machine_states.py                       # default and spin-count 0, 60 s each
    python tools/bench/machine_states.py --seconds 120 --settings default,threads1

Settings: default (TVM_NUM_THREADS as set), spin0 (TVM_THREAD_POOL_SPIN_COUNT=0),
bind (TVM_BIND_THREADS=1), threads1 (TVM_NUM_THREADS=1).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SETTINGS = {"default": {}, "spin0": {"TVM_THREAD_POOL_SPIN_COUNT": "0"}, "bind": {"TVM_BIND_THREADS": "1"},
            "threads1": {"TVM_NUM_THREADS": "1"}}


def build(workdir: Path, sparsity: float) -> None:
    import torch
    import spdy
    model = spdy.models.resnet18().eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    spdy.compile(model, (x,), speedup=1.0, measure=False).save(workdir / "dense")
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and n != "conv1"]
    profile = {n: {"format": "bsr16x1", "sparsity": sparsity} for n in convs}
    spdy.compile(model, (x,), profile=profile, measure=False).save(workdir / "sparse")


def time_pairs(workdir: Path, seconds: float, n: int) -> list[list[float]]:
    """[[dense ms, sparse ms], ...] alternating for `seconds` (runs in the child process)."""
    import numpy as np
    import spdy
    dense, sparse = spdy.load(workdir / "dense"), spdy.load(workdir / "sparse")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype("float32")

    def per_call_ms(fn) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(x)
        return (time.perf_counter() - t0) / n * 1e3

    for fn in (dense, sparse):
        per_call_ms(fn)
    pairs, end = [], time.time() + seconds
    while time.time() < end:
        pairs.append([round(per_call_ms(dense), 4), round(per_call_ms(sparse), 4)])
    return pairs


def summarize(pairs: list[list[float]], slow_below: float) -> dict:
    import numpy as np
    d, s = np.array(pairs).T
    ratio = d / s
    fast = float(np.median(np.sort(ratio)[len(ratio) // 2:]))    # median of the faster half
    slow = ratio < slow_below * fast
    return {"pairs": len(pairs), "dense_ms_median": float(np.median(d)), "sparse_ms_median": float(np.median(s)),
            "ratio_median": float(np.median(ratio)), "ratio_p10": float(np.percentile(ratio, 10)),
            "ratio_p90": float(np.percentile(ratio, 90)), "fast_state_ratio": fast,
            "slow_fraction": float(slow.mean()),
            "slow_state_ratio": float(np.median(ratio[slow])) if slow.any() else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="default,spin0")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--n", type=int, default=10, help="calls per timing (one pair = one dense + one sparse timing)")
    ap.add_argument("--sparsity", type=float, default=0.85)
    ap.add_argument("--slow-below", type=float, default=0.85)
    ap.add_argument("--out", default=str(ROOT / "tools" / "bench" / "results" / "machine_states.json"))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:   # one setting, in its own process
        print(json.dumps(time_pairs(Path(args.child), args.seconds, args.n)))
        return 0
    unknown = [s for s in args.settings.split(",") if s not in SETTINGS]
    if unknown:
        ap.error(f"unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    doc = {"settings": vars(args), "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                                                "loadavg_start": os.getloadavg()}, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), args.sparsity)
        for name in args.settings.split(","):
            env = {**os.environ, **SETTINGS[name]}
            out = subprocess.run([sys.executable, __file__, "--child", tmp, "--seconds", str(args.seconds),
                                  "--n", str(args.n)], env=env, capture_output=True, text=True, check=True)
            pairs = json.loads(out.stdout.strip().splitlines()[-1])
            row = {"setting": name, "env": SETTINGS[name], **summarize(pairs, args.slow_below), "samples": pairs}
            doc["rows"].append(row)
            print(f"{name:9s} pairs {row['pairs']:4d}  dense {row['dense_ms_median']:.2f} ms  sparse "
                  f"{row['sparse_ms_median']:.2f} ms  ratio median {row['ratio_median']:.2f} "
                  f"[p10 {row['ratio_p10']:.2f}, p90 {row['ratio_p90']:.2f}]  slow {row['slow_fraction']:.0%}"
                  + (f" at {row['slow_state_ratio']:.2f}" if row["slow_state_ratio"] else ""), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
