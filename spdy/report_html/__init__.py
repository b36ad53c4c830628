"""report.html: the compile report a person reads, written into every saved artifact.

One self-contained file (CSS, a few lines of JS for sortable tables, plots as inline SVG):
nothing is fetched from the network, so it opens offline, from a mail or an archive, and
looks the same in ten years. It is built from the artifact's own files (report.json,
passlog.jsonl, profile.json, manifest.json, and a sweep's results.json when one is in the
directory), so `spdy report DIR` rebuilds it for any artifact, older ones included.

Why matplotlib for the plots: spdy already draws with it (the sweep's PNGs, the benches), it
writes SVG itself with no browser or JS runtime, and its SVG is static text a few tens of KB
per plot. plotly's interactive plots would need its ~3.5 MB JS bundle inlined into every
report to stay offline. matplotlib is imported only while a report is drawn, never by
`import spdy` or `spdy.load`.

    write_report_html(artifact_dir) -> Path        # DIR/report.html, atomically
    render_report_html(artifact_dir) -> str        # the document
    write_failure_html(artifact_dir, reason) -> Path   # a short page saying why there is no report
    save_plots_png(artifact_dir, out_dir) -> list[Path]  # the main plots as PNG (docs)
"""
from __future__ import annotations

import os
from pathlib import Path

from spdy.report_html.data import read_artifact, target_text
from spdy.report_html.page import esc, page

REPORT_HTML = "report.html"


def render_report_html(artifact_dir) -> str:
    from spdy.report_html.sections import build_sections
    data = read_artifact(artifact_dir)
    sections, shown = build_sections(data)
    r = data.report
    mode = r.get("mode") or "artifact"
    title = f"spdy report: {Path(artifact_dir).resolve().name}"
    sub = f"{mode} compile for {target_text(r, data.manifest)}"
    if r.get("requested_speedup") and r["requested_speedup"] > 1:
        sub += f", {r['requested_speedup']:g}x requested"
    return page(title, sub, sections, shown)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_report_html(artifact_dir) -> Path:
    """Write DIR/report.html (a temporary file renamed into place: never half-written)."""
    path = Path(artifact_dir) / REPORT_HTML
    _write_atomic(path, render_report_html(artifact_dir))
    return path


def write_failure_html(artifact_dir, reason: str) -> Path:
    """The page written when drawing the report failed: the artifact is fine, the report is
    not there, and this says why and how to rebuild it."""
    path = Path(artifact_dir) / REPORT_HTML
    _write_atomic(path, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>spdy report: "
                        "not drawn</title></head><body><h1>The report could not be drawn</h1>"
                        f"<p>{esc(reason)}</p><p>The artifact itself is complete. Rebuild this page with "
                        f"<code>spdy report {esc(Path(artifact_dir))}</code>; report.json, passlog.jsonl and "
                        "profile.json hold the same numbers.</p></body></html>\n")
    return path


def save_plots_png(artifact_dir, out_dir, names=("latency", "layers", "rounds", "heatmap", "passes", "channels")
                   ) -> list[Path]:
    """The report's plots as PNG files `out_dir/<name>.png` (those with something to draw)."""
    from spdy.report_html.plots import to_png
    from spdy.report_html.sections import figures
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(read_artifact(artifact_dir)).items():
        if fig is None:
            continue
        if name in names:
            to_png(fig, out / f"{name}.png")
            written.append(out / f"{name}.png")
        else:
            import matplotlib.pyplot as plt
            plt.close(fig)
    return written
