"""cm.report: what a compile did and measured, from its context (the same for every strategy)."""
from __future__ import annotations

import math

# artifacts the report carries as they are, when the compile produced them
REPORTED = ("baseline", "rounds", "pruned", "predicted_speedup", "calib_loss", "channels", "reference_notes")


def compile_report(ctx, strategy, *, compile_s: float) -> dict:
    o, art = ctx.options, ctx.artifacts
    searched = o.speedup > 1.0
    report = {
        "model": type(ctx.model).__name__,
        "mode": strategy.report_mode,
        "method": o.method if searched else None,
        "requested_speedup": o.speedup,
        "target": ctx.target.canonical(),
        "threads": ctx.num_threads,
        "trace_method": art.get("graph"),
        "layers": [l.to_json() for l in art.get("layers", [])],
        "compile_s": round(compile_s, 3),
        "formats": strategy.formats(ctx),
        "pipeline": [r["options"] for r in ctx.passlog],
    }
    if ctx.tuner is not None:
        report["tuner"] = dict(ctx.tuner.stats)
    report["measure"] = ctx.device.report(ctx.num_threads)
    for key in REPORTED:
        if key in art:
            report[key] = art[key]
    if art.get("verified"):
        report["measured_speedup"] = art["verified"]["measured_speedup"]
    report["profile"] = art.get("profile", {})
    if art.get("latency_table") is not None:
        report["latency_table"] = latency_table_report(art["latency_table"], report["profile"],
                                                       art.get("latency_table_uncalibrated"))
        errors = chosen_errors(art.get("recon_db"), report["profile"])
        if errors:
            report["layer_errors"] = errors
    return report


def _ms(t) -> float | None:
    """Seconds -> ms with 4 significant digits (None for an option the target cannot run)."""
    t = float(t)
    return None if not math.isfinite(t) else float(f"{t * 1e3:.4g}")


def latency_table_report(table, profile: dict, uncalibrated=None) -> dict:
    """A compact copy of the latency table the search used (ms, 4 significant digits) and the
    option each row chose, for the HTML report's heatmap; `calibrated_ms` when calibrate-table
    corrected it in place (`times_ms` is then the table as first timed)."""
    from spdy.passes.algo.grid import level_bp
    keys = [opt.key for opt in table.options]
    chosen = []
    for name in table.layers:
        p = profile.get(name)
        key = f"{p['format']}:{level_bp(p['sparsity'])}" if p and p.get("format") != "channels" else None
        chosen.append(keys.index(key) if key in keys else None)
    first = table.times if uncalibrated is None else uncalibrated
    out = {"layers": list(table.layers), "options": keys, "times_ms": [[_ms(t) for t in row] for row in first],
           "chosen": chosen, "base_ms": _ms(table.base), "fixed_ms": _ms(table.fixed), "frozen": list(table.frozen),
           "timed_options": [int(j) for j in table.timed], "dense_timed": table.dense_timed}
    if uncalibrated is not None:
        out["calibrated_ms"] = [[_ms(t) for t in row] for row in table.times]
    return out


def chosen_errors(db, profile: dict) -> dict:
    """{layer: reconstruction error of its chosen option}: the mean squared output error on the
    calibration set that build-database recorded (0 for a dense layer); absent when unknown."""
    if db is None:
        return {}
    from spdy.passes.algo.grid import level_bp
    out = {}
    for name, p in profile.items():
        if p.get("format") in (None, "channels"):
            continue
        if p["format"] == "dense":
            out[name] = 0.0
            continue
        try:
            e = db.errors(name, p["format"]).get(level_bp(p["sparsity"]))
        except (KeyError, ValueError):
            e = None
        if e is not None:
            out[name] = float(f"{float(e):.6g}")
    return out
