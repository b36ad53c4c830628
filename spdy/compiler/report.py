"""cm.report: what a compile did and measured, from its context (the same for every strategy)."""
from __future__ import annotations

# artifacts the report carries as they are, when the compile produced them
REPORTED = ("baseline", "rounds", "pruned", "predicted_speedup", "calib_loss", "channels", "reference_notes")


def compile_report(ctx, strategy, *, compile_s: float) -> dict:
    o, art = ctx.options, ctx.artifacts
    searched = o.speedup > 1.0
    report = {
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
    return report
