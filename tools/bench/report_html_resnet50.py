"""How long report.html takes to write for a ResNet-50-sized compile (issue 23).

A real SPDY compile of ResNet-50 takes tens of minutes here, so the artifact directory is
synthesized at ResNet-50's size: its 53 prunable layers (names and weight shapes from
spdy.models.resnet50; 54 with the classifier), a latency table of the default formats at 41
levels (dense, 40 x bsr16x1, dense-int8, 40 x bsr4x4-int8: 82 options; times
from the weights' sizes, as tests/compile/fakes.py does), a searched profile, three correction
rounds with in-place layer times, and a pass log of the passes such a compile runs. The report
is drawn from it by the same code cm.save uses (spdy.report_html.write_report_html).

Prints a table and writes tools/bench/results/report_html_resnet50.json:
  first   - in a fresh process: matplotlib's import included (what one `spdy report` costs)
  warm    - median of `--repeat` further writes in the same process (what a save costs when
            matplotlib is already loaded)

    .venv/bin/python tools/bench/report_html_resnet50.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

FORMATS = ("bsr16x1", "dense-int8", "bsr4x4-int8")
LEVELS = 41


def resnet50_layers() -> list[dict]:
    import torch
    from spdy.models import resnet50
    model = resnet50()
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            out.append({"qualname": name, "kind": "conv2d" if isinstance(m, torch.nn.Conv2d) else "linear",
                        "weight_shape": list(m.weight.shape), "numel": int(m.weight.numel())})
    return out


def synthesize(directory: Path) -> dict:
    rng = np.random.default_rng(0)
    layers = resnet50_layers()
    levels = [0.0] + list(1 - np.geomspace(0.6, 0.01, LEVELS - 1))
    grid = {f: [0.0] if f.startswith("dense") else levels[1:] for f in FORMATS}   # dense-int8: one option
    options = ["dense:0"] + [f"{f}:{round(s * 10000)}" for f in FORMATS for s in grid[f]]
    times = []
    for l in layers:
        dense = l["numel"] * 1e-7
        row = [dense]
        for f in FORMATS:
            for s in grid[f]:
                scale = 0.35 if "int8" in f else 1.0
                row.append(dense * scale * (0.1 + 0.9 * (1 - s)) * rng.uniform(0.95, 1.05))
        times.append([float(f"{t:.4g}") for t in row])
    chosen = [int(rng.integers(0, len(options))) for _ in layers]
    chosen[0] = chosen[-1] = 0
    profile = {}
    for l, c in zip(layers, chosen):
        fmt, bp = options[c].split(":")
        profile[l["qualname"]] = {"format": fmt, "dtype": "int8" if "int8" in fmt else "fp32",
                                  "sparsity": int(bp) / 10000}
    base = sum(r[0] for r in times) * 1.15
    in_place = {"artifact": {l["qualname"]: r[c] * 1.1 for l, r, c in zip(layers, times, chosen)},
                "dense_artifact": {l["qualname"]: r[0] for l, r in zip(layers, times)}}
    ms = lambda v: {"median_ms": v, "p10_ms": v * 0.98, "p90_ms": v * 1.03, "n": 7,  # noqa: E731
                    "samples_ms": [v] * 7}
    rounds = [{"round": i, "artifact": ms(base / s), "dense_artifact": ms(base), "torch_eager": ms(base * 1.3),
               "onnxruntime": ms(base * 0.9), "measured_speedup": s, "measured_speedup_p10_p90": [s * 0.97, s * 1.02],
               "predicted_speedup": p, "in_place_ms": in_place, "speedup_vs_torch_eager": 1.3 * s,
               "speedup_vs_onnxruntime": 0.9 * s, "dense_vs_torch_eager": 1.3, "dense_vs_onnxruntime": 0.9,
               "calibrated_predicted_speedup": s * 1.01}
              for i, (s, p) in enumerate([(1.84, 2.05), (2.02, 2.1), (2.31, 2.4)])]
    report = {"model": "ResNet", "mode": "spdy", "method": "spdy", "requested_speedup": 2.0,
              "target": json.dumps({"kind": "llvm", "mcpu": "rocketlake", "num-cores": 2}), "threads": 2,
              "layers": [{k: v for k, v in l.items() if k != "numel"} for l in layers], "compile_s": 2400.0,
              "tuner": {"hits": 120, "misses": 40, "tuned": 40, "tune_s": 300.0},
              "baseline": {"dense_artifact": ms(base), "torch_eager": ms(base * 1.3), "onnxruntime": ms(base * 0.9),
                           "speedup_vs_torch_eager": 1.3, "speedup_vs_onnxruntime": 0.9},
              "rounds": rounds, "measured_speedup": 2.02, "predicted_speedup": 2.1, "calib_loss": 0.12,
              "pruned": {k: v["sparsity"] for k, v in profile.items() if v["format"] != "dense"},
              "profile": profile, "layer_errors": {k: float(rng.uniform(0, 1e-2)) for k in profile},
              "latency_table": {"layers": [l["qualname"] for l in layers], "options": options, "times_ms": times,
                                "calibrated_ms": times, "chosen": chosen, "base_ms": base,
                                "fixed_ms": base - sum(r[0] for r in times), "frozen": [],
                                "timed_options": list(range(0, len(options), 4)), "dense_timed": "in-place"}}
    passes = ["trace", "canonicalize", "fuse-epilogues", "dense-baseline", "insert-masks", "insert-quant-stubs",
              "calibrate-activations", "profile-latency", "build-database"] + \
        ["solve-sparsity", "apply-profile", "lower-to-tvm", "build-artifact", "verify-speedup", "calibrate-table"] * 3
    passlog = [{"seq": i, "pass": p, "options": p, "status": "ok", "wall_s": float(rng.uniform(0.1, 60)),
                "stats": {"budget_scale": 1.0} if p == "solve-sparsity" else {}} for i, p in enumerate(passes)]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report))
    (directory / "profile.json").write_text(json.dumps(profile))
    (directory / "passlog.jsonl").write_text("".join(json.dumps(r) + "\n" for r in passlog))
    (directory / "manifest.json").write_text(json.dumps({"inputs": [{"name": "x", "shape": [1, 3, 224, 224],
                                                                      "dtype": "float32"}], "num_threads": 2}))
    return {"layers": len(layers), "options": len(options), "rounds": len(rounds), "passes": len(passlog)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "resnet50"
        sizes = synthesize(d)
        t0 = time.perf_counter()
        from spdy.report_html import write_report_html
        path = write_report_html(d)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            write_report_html(d)
            warm.append(time.perf_counter() - t0)
        kb = path.stat().st_size / 1024
    result = {"what": "report.html of a synthesized ResNet-50-sized SPDY compile", **sizes,
              "first_s": round(first, 3), "warm_median_s": round(statistics.median(warm), 3),
              "warm_s": [round(w, 3) for w in warm], "html_kb": round(kb, 1),
              "load_average_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    print(f"{'layers':>7} {'options':>8} {'first s':>8} {'warm s':>7} {'KB':>7}")
    print(f"{sizes['layers']:>7} {sizes['options']:>8} {first:8.2f} {result['warm_median_s']:7.2f} {kb:7.0f}"
          f"   (load average {result['load_average_1min']} on {result['cpus']} CPUs)")
    out = Path(__file__).parent / "results" / "report_html_resnet50.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
