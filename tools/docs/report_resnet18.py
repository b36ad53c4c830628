"""docs/report_resnet18/: the report.html of ResNet-18 SPDY-compiled at 2x, and its main plots as PNG.

ResNet-18 (spdy.models.resnet18, random weights) at 1x3x224x224, synthetic calibration data
(8 batches of 8 random images), tune=False and a 21-level grid to keep the compile short;
everything else is spdy.compile's default. The artifact goes to a temporary folder (model.so
is not committed); report.html and the PNGs go to docs/report_resnet18/.

    .venv/bin/python tools/docs/report_resnet18.py [--artifact DIR]   # DIR: reuse a saved artifact
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "report_resnet18"


def compile_resnet18(out: Path) -> Path:
    import torch
    import spdy
    from spdy.models import resnet18
    from spdy.progress_bar import ProgressBar
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 224, 224, generator=g)
    calib = [torch.randn(8, 3, 224, 224, generator=g) for _ in range(8)]
    t0 = time.perf_counter()
    cm = spdy.compile(resnet18().eval(), (x,), speedup=2.0, calib=calib, tune=False, n_samples=64, grid_levels=21,
                      progress=ProgressBar())
    print(f"compiled in {time.perf_counter() - t0:.0f} s: measured {cm.report.get('measured_speedup'):.2f}x")
    return cm.save(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default=None, help="a saved ResNet-18 artifact to draw instead of compiling")
    args = ap.parse_args()
    from spdy.report_html import save_plots_png, write_report_html
    with tempfile.TemporaryDirectory() as tmp:
        art = Path(args.artifact) if args.artifact else compile_resnet18(Path(tmp) / "resnet18")
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(write_report_html(art), DOCS / "report.html")
        for p in save_plots_png(art, DOCS, names=("latency", "layers", "rounds", "heatmap", "passes")):
            print(f"wrote {p}")
    print(f"wrote {DOCS / 'report.html'}")


if __name__ == "__main__":
    main()
