"""The report's sections, each from the rows of data.py: a short text, a plot, a sortable table.

`build_sections(data)` returns (id, title, html) per section in page order, plus the
numbers shown (embedded in the page as JSON). `figures(data)` returns the matplotlib
figures by name, for PNG copies (docs/).
"""
from __future__ import annotations

from spdy.report_html import data as D
from spdy.report_html import plots as P
from spdy.report_html.page import Cell, kv, note, num, pct, plot, speedup, table, text


def _fmt_x(v, missing="not recorded"):
    return missing if v is None else f"{v:.2f}x"


def summary_section(s: dict, figs: dict) -> str:
    items = [("model", s["model"]), ("mode", s["mode"] + (f" ({s['method']})" if s["method"] and s["method"] != s["mode"] else "")),
             ("target", s["target"]), ("threads", s["threads"] or "not recorded"),
             ("measured on", s["measured_on"] or "not recorded"),
             ("requested speedup", _fmt_x(s["requested_speedup"])),
             ("predicted speedup", _fmt_x(s["predicted_speedup"], "not searched")),
             ("measured speedup", _fmt_x(s["measured_speedup"], "not measured against a dense artifact")),
             ("compile time", "not recorded" if s["compile_s"] is None else f"{s['compile_s']:.1f} s"),
             ("layers changed (pruned, int8)", f"{s['pruned_layers']} of {s['layers']}")]
    if s["calib_loss"] is not None:
        items.append(("calibration loss", f"{s['calib_loss']:.4g}"))
    if s["inputs"]:
        items.append(("inputs", "; ".join(s["inputs"])))
    if s["created"]:
        items.append(("saved", s["created"]))
    rows = []
    for ref in ("PyTorch eager", "onnxruntime"):
        rows.append([text(ref), num(s["latency_ms"].get(ref), "{:.4g}", "not timed"),
                     speedup(s["dense_vs"].get(ref), "not timed"), speedup(s["artifact_vs"].get(ref), "not timed")])
    for name in ("spdy dense artifact", "spdy artifact"):
        rows.append([text(name), num(s["latency_ms"].get(name), "{:.4g}", "not timed"), Cell("", None, True),
                     Cell("", None, True)])
    t = table(["runtime", "median ms", "dense artifact's speedup over it", "artifact's speedup over it"], rows,
              table_id="summary-table", scroll=False)
    p10p90 = s["measured_p10_p90"]
    extra = note(f"measured speedup p10..p90 over the paired runs: {p10p90[0]:.2f}..{p10p90[1]:.2f}x") \
        if p10p90 else ""
    return kv(items) + extra + plot(figs.get("latency")) + t


def layers_section(rows: list[dict], source: str, figs: dict) -> str:
    has_err = any(r["error"] is not None for r in rows)
    body = note(f"Latency shares: {source}. Calibration error: the layer's mean squared output error on the "
                "calibration set for the chosen option (build-database's reconstruction; 0 for a dense layer)"
                + ("." if has_err else "; not recorded for this compile (no search, or an older report)."))
    if not rows:
        return body + note("report.json lists no layers.")
    cells = [[num(i, "{:d}"), text(r["layer"]), text(r["kind"]), text(r["weight"]), text(r["format"]),
              text(r["dtype"]), pct(r["level"]), text(r["kept"]), pct(r["share_before"]), pct(r["share_after"]),
              num(r["error"], "{:.3g}")] for i, r in enumerate(rows)]
    return body + plot(figs.get("layers")) + table(
        ["#", "layer", "kind", "weight", "format", "dtype", "level (sparsity)", "channels kept",
         "share before", "share after", "calibration error"], cells, table_id="layers-table")


def rounds_section(rows: list[dict], target, figs: dict) -> str:
    if not rows:
        return note("No correction rounds: a compile without a speedup target (dense or a given profile) is "
                    "measured once, not corrected.")
    cells = [[num(r["round"], "{:d}"), num(r["budget_scale"], "{:.4g}", "-"), num(r["budget_ms"], "{:.4g}", "-"),
              speedup(r["predicted"]), speedup(r["measured"]),
              text("" if not r["p10_p90"] else f"{r['p10_p90'][0]:.2f}..{r['p10_p90'][1]:.2f}x"),
              num(r["measurements"], "{:d}"), speedup(r["calibrated_predicted"], "-"),
              num(r["artifact_ms"], "{:.4g}"), num(r["dense_ms"], "{:.4g}"), text("yes" if r["adopted"] else ""),
              text(r["verdict"]), text(r["calibration"])] for r in rows]
    return (note("Each round solves under a budget (scale x the target's), builds, and measures the artifact "
                 "against the dense artifact in alternating runs; what the round showed decides the next budget "
                 "(spdy/passes/algo/budget_correction.py). Of the rounds that met the target the one with the "
                 "least calibration loss is adopted.")
            + plot(figs.get("rounds"))
            + table(["round", "budget scale", "budget ms", "predicted", "measured", "p10..p90", "measurements",
                     "predicted after calibration", "artifact ms", "dense ms", "adopted", "outcome",
                     "in-place calibration"], cells, table_id="rounds-table", highlight=[r["adopted"] for r in rows]))


def table_section(lt: dict | None, figs: dict) -> str:
    if not lt:
        return note("No latency table in this artifact: only a searched sparse compile times one "
                    "(a channels compile times widths: see the channel widths section).")
    timed = set(lt.get("timed_options") or [])
    body = note(f"{len(lt['layers'])} layers x {len(lt['options'])} options; dense artifact {lt.get('base_ms')} ms, "
                f"of which {lt.get('fixed_ms')} ms is outside the table's layers (fixed); dense column timed "
                f"{lt.get('dense_timed')}; {len(timed)} option columns timed, the rest interpolated in density. "
                "Colour: the option's time over the layer's dense time (green faster, red slower; 2x and more "
                "saturate); circled: the chosen option.")
    body += plot(figs.get("heatmap"))
    if lt.get("calibrated_ms"):
        body += note("After in-place calibration (the table the last round solved on):") + plot(figs.get("heatmap_cal"))
    times = lt.get("calibrated_ms") or lt["times_ms"]
    chosen = lt.get("chosen") or [None] * len(lt["layers"])
    cells = []
    for name, row, c in zip(lt["layers"], times, chosen):
        best = min((v for v in row if v is not None), default=None)
        cells.append([text(name), text(lt["options"][c] if c is not None else "frozen / not in table"),
                      num(row[0], "{:.4g}"), num(row[c] if c is not None else None, "{:.4g}", "-"),
                      num(best, "{:.4g}"), text("yes" if name in (lt.get("frozen") or []) else "")])
    return body + table(["layer", "chosen option", "dense ms", "chosen ms", "fastest option ms", "kept dense"], cells,
                        table_id="latency-table-rows")


def passes_section(rows: list[dict], figs: dict) -> str:
    if not rows:
        return note("passlog.jsonl is missing or empty.")
    cells = [[num(r["seq"], "{:d}"), text(r["pass"]), text(r["options"]), text(r["status"]),
              num(r["start_s"], "{:.2f}"), num(r["wall_s"], "{:.3f}"),
              text(", ".join(f"{k}={v}" for k, v in r["stats"].items()
                             if isinstance(v, (int, float, str, bool)))[:160])] for r in rows]
    total = sum(r["wall_s"] for r in rows)
    return (note(f"{len(rows)} passes, {total:.1f} s of pass wall time (compile time also counts set-up and the "
                 "report).") + plot(figs.get("passes"))
            + table(["seq", "pass", "options", "status", "start s", "wall s", "stats"], cells,
                    table_id="passes-table"))


def caches_section(rows: list[dict]) -> str:
    if not rows:
        return note("No cache statistics recorded.")
    cells = [[text(r["cache"]), num(r["hits"], "{}", "-"), num(r["misses"], "{}", "-"), text(r["note"])] for r in rows]
    return (note("Hits: work found in a cache (kernel tuning records, the latency database in SQLite, the "
                 "reconstruction database); misses: work done and stored by this compile.")
            + table(["cache", "hits", "misses", "note"], cells, table_id="caches-table", scroll=False))


def channels_section(rows: list[dict], mode: str, figs: dict) -> str:
    if not rows:
        return note(f"Not a channels compile (mode: {mode}): the widths are searched only with mode='channels'.")
    cells = [[text(r["group"]), num(r["size"], "{}", "-"), num(r["kept"], "{}"),
              pct(r["kept"] / r["size"] if r["size"] and r["kept"] is not None else None, "-"),
              num(r["members"], "{}", "-"), num(r["error"], "{:.3g}", "-"),
              text(r["reason"] or ("" if r["prunable"] else "not prunable"))] for r in rows]
    return plot(figs.get("channels")) + table(
        ["coupling group", "full width", "kept", "kept share", "members", "error at kept width", "note"], cells,
        table_id="channels-table")


def sweep_section(sweep: dict | None, figs: dict) -> str:
    if not sweep:
        return note("No sweep in this directory (`spdy sweep -o DIR` writes results.json; `spdy report DIR` "
                    "draws it).")
    levels = sweep.get("levels") or []
    keys = [k for k in ("level", "sparsity", "test_acc", "train_acc_noisy", "train_acc_true", "learning_distance")
            if any(k in lv for lv in levels)]
    cells = [[num(lv.get(k), "{:.4g}", "-") for k in keys] for lv in levels]
    return plot(figs.get("sweep")) + table(keys, cells, table_id="sweep-table")


def figures(data: D.ArtifactData) -> dict:
    """name -> matplotlib Figure (None when there is nothing to draw)."""
    s = D.summary(data)
    rows, _ = D.layer_rows(data)
    lt = data.report.get("latency_table")
    return {
        "latency": P.latency_bars(s),
        "layers": P.layer_shares(rows),
        "rounds": P.rounds_plot(D.round_rows(data), s["requested_speedup"]),
        "heatmap": P.heatmap(lt, "times_ms", "latency table as timed") if lt else None,
        "heatmap_cal": P.heatmap(lt, "calibrated_ms", "latency table after in-place calibration")
        if lt and lt.get("calibrated_ms") else None,
        "passes": P.pass_timeline(D.pass_rows(data)),
        "channels": P.channel_widths(D.channel_rows(data)),
        "sweep": P.sweep_plot(data.sweep) if data.sweep else None,
    }


def build_sections(data: D.ArtifactData) -> tuple[list[tuple[str, str, str]], dict]:
    s = D.summary(data)
    layer_rows, source = D.layer_rows(data)
    rounds = D.round_rows(data)
    passes = D.pass_rows(data)
    caches = D.cache_rows(data)
    channels = D.channel_rows(data)
    figs = {k: (P.to_svg(f) if f is not None else None) for k, f in figures(data).items()}
    sections = [
        ("summary", "Summary", summary_section(s, figs)
         + (note("Not found or unreadable: " + "; ".join(data.problems)) if data.problems else "")),
        ("layers", "Profile per layer", layers_section(layer_rows, source, figs)),
        ("rounds", "Correction rounds", rounds_section(rounds, s["requested_speedup"], figs)),
        ("latency-table", "Latency table", table_section(data.report.get("latency_table"), figs)),
        ("passes", "Pass timeline", passes_section(passes, figs)),
        ("caches", "Caches", caches_section(caches)),
        ("channels", "Channel widths", channels_section(channels, s["mode"], figs)),
        ("sweep", "Sweep", sweep_section(data.sweep, figs)),
    ]
    shown = {"summary": s, "layers": layer_rows, "rounds": rounds,
             "passes": [{k: v for k, v in p.items() if k != "stats"} for p in passes], "caches": caches,
             "channels": channels}
    return sections, shown
