"""What the HTML report shows, read from an artifact directory and put into rows.

Everything here is plain data (dicts, lists, floats): the page and the plots draw it, the
tests compare it with report.json. A file that is missing or unreadable is not an error: the
report is written for every artifact, old ones and incomplete ones included, and a section
with nothing to show says what was not recorded instead.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FILES = ("report.json", "passlog.jsonl", "profile.json", "manifest.json")
SWEEP_RESULTS = "results.json"   # what `spdy sweep -o DIR` writes (spdy/sweep/runner.py)


@dataclass
class ArtifactData:
    """The JSON files of one artifact directory (empty where a file is absent)."""
    directory: Path
    report: dict = field(default_factory=dict)
    passlog: list = field(default_factory=list)
    profile: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    sweep: dict | None = None            # results.json of a sweep written into this directory
    problems: list = field(default_factory=list)   # "passlog.jsonl: missing", ...


def read_artifact(directory) -> ArtifactData:
    """Read what there is; unreadable files are listed in `problems`, never raised."""
    d = Path(directory)
    data = ArtifactData(d)
    for name in FILES:
        p = d / name
        if not p.is_file():
            data.problems.append(f"{name}: missing")
            continue
        try:
            text = p.read_text()
            value = [json.loads(line) for line in text.splitlines() if line.strip()] if name.endswith(".jsonl") \
                else json.loads(text)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            data.problems.append(f"{name}: unreadable ({type(exc).__name__})")
            continue
        setattr(data, name.split(".")[0], value)
    sweep = d / SWEEP_RESULTS
    if sweep.is_file():
        try:
            value = json.loads(sweep.read_text())
            data.sweep = value if isinstance(value, dict) and value.get("levels") else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            data.problems.append(f"{SWEEP_RESULTS}: unreadable")
    return data


def _num(x):
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def target_text(report: dict, manifest: dict) -> str:
    """The target as one line: `llvm -mcpu=rocketlake -num-cores=2` rather than its JSON."""
    t = report.get("target") or manifest.get("target_canonical") or manifest.get("target")
    if isinstance(t, str):
        try:
            t = json.loads(t)
        except json.JSONDecodeError:
            return t
    if isinstance(t, dict):
        parts = [str(t.get("kind", "?"))]
        for k, v in t.items():
            if k in ("kind", "keys", "tag") or v in (None, "", []):
                continue
            parts.append(f"-{k}={','.join(map(str, v)) if isinstance(v, list) else v}")
        return " ".join(parts)
    return "not recorded"


def adopted_round(report: dict) -> dict | None:
    """The round the compile kept: the one whose measurement is the report's."""
    rounds = report.get("rounds") or []
    ms = report.get("measured_speedup")
    for r in rounds:
        if r.get("measured_speedup") == ms:
            return r
    return rounds[-1] if rounds else None


def summary(data: ArtifactData) -> dict:
    """Model, target, speedups (requested, predicted, measured), latencies and compile time."""
    r, m = data.report, data.manifest
    adopted = adopted_round(r) or {}
    base = r.get("baseline") or {k: adopted.get(k) for k in ("dense_artifact", "torch_eager", "onnxruntime")}

    def ms(entry):
        return _num((entry or {}).get("median_ms"))
    latencies = {"spdy dense artifact": ms(base.get("dense_artifact")),
                 "spdy artifact": ms(adopted.get("artifact")) if adopted else None,
                 "PyTorch eager": ms(base.get("torch_eager")),
                 "onnxruntime": ms(base.get("onnxruntime"))}
    if not adopted:   # a dense compile: the artifact is the dense artifact
        latencies["spdy artifact"] = latencies["spdy dense artifact"]
    dense_vs = {"PyTorch eager": _num(adopted.get("dense_vs_torch_eager") if adopted
                                      else base.get("speedup_vs_torch_eager")),
                "onnxruntime": _num(adopted.get("dense_vs_onnxruntime") if adopted
                                    else base.get("speedup_vs_onnxruntime"))}
    layers = r.get("layers") or []
    return {
        "model": f"{r.get('model') or 'class not recorded'} ({len(layers)} layers)",
        "mode": r.get("mode") or "not recorded",
        "method": r.get("method"),
        "target": target_text(r, m),
        "threads": r.get("threads") or m.get("num_threads"),
        "measured_on": (r.get("measure") or {}).get("device") or base.get("measured_on"),
        "requested_speedup": _num(r.get("requested_speedup")),
        "predicted_speedup": _num(r.get("predicted_speedup")),
        "measured_speedup": _num(r.get("measured_speedup")),
        "measured_p10_p90": adopted.get("measured_speedup_p10_p90"),
        "artifact_vs": {"PyTorch eager": _num(adopted.get("speedup_vs_torch_eager")),
                        "onnxruntime": _num(adopted.get("speedup_vs_onnxruntime"))} if adopted else dense_vs,
        "dense_vs": dense_vs,
        "latency_ms": latencies,
        "compile_s": _num(r.get("compile_s")),
        "calib_loss": _num(r.get("calib_loss")),
        "layers": len(layers),
        "pruned_layers": len(r.get("pruned") or {}),
        "created": m.get("created"),
        "inputs": [f"{i.get('name')}: {'x'.join(map(str, i.get('shape', [])))} {i.get('dtype', '')}"
                   for i in m.get("inputs") or []],
    }


def layer_rows(data: ArtifactData) -> tuple[list[dict], str]:
    """One row per layer in network order, and where the latency shares come from.

    Shares: measured inside the artifacts when the adopted round profiled them in place
    (`in_place_ms`), else the latency table (the layer's dense time over the dense artifact's
    end-to-end time, and its chosen option's time over the predicted total), else none."""
    r = data.report
    profile = r.get("profile") or data.profile or {}
    errors = r.get("layer_errors") or {}
    table = r.get("latency_table") or {}
    adopted = adopted_round(r) or {}
    in_place = adopted.get("in_place_ms") or {}
    before, after, source = {}, {}, "not recorded (a dense compile times no layer; `spdy bench --layers` does)"
    if in_place.get("artifact") and in_place.get("dense_artifact"):
        for out, times in ((before, in_place["dense_artifact"]), (after, in_place["artifact"])):
            total = sum(v for v in times.values() if isinstance(v, (int, float))) or 1.0
            out.update({k: v / total for k, v in times.items() if isinstance(v, (int, float))})
        source = "measured in place: each layer's kernels inside the dense artifact and inside the artifact"
    elif table.get("layers"):
        times = table.get("calibrated_ms") or table.get("times_ms")
        rows = dict(zip(table["layers"], zip(times, table.get("chosen") or [None] * len(times))))
        base = _num(table.get("base_ms")) or 0.0
        fixed = _num(table.get("fixed_ms")) or 0.0
        chosen_t = {n: row[c] for n, (row, c) in rows.items() if c is not None and row[c] is not None}
        predicted = fixed + sum(chosen_t.values()) + sum(row[0] or 0.0 for n, (row, c) in rows.items()
                                                         if n not in chosen_t)
        for n, (row, c) in rows.items():
            if base and row[0] is not None:
                before[n] = row[0] / base
            t = chosen_t.get(n, row[0])
            if predicted and t is not None:
                after[n] = t / predicted
        source = "the latency table (each layer timed alone): dense time / dense artifact, chosen option / prediction"
    out = []
    order = [l.get("qualname") for l in r.get("layers") or []] or list(profile)
    for name in order:
        layer = next((l for l in r.get("layers") or [] if l.get("qualname") == name), {})
        p = profile.get(name) or {}
        fmt = p.get("format") or "dense"
        level = p.get("sparsity")
        out.append({
            "layer": name, "kind": layer.get("kind", ""),
            "weight": "x".join(map(str, layer.get("weight_shape", []))),
            "format": fmt, "dtype": p.get("dtype") or ("fp32" if fmt in ("dense", "channels") else ""),
            "level": _num(level) if level is not None else 0.0,
            "kept": f"{p['kept']}/{p['of']}" if "kept" in p else "",
            "share_before": before.get(name), "share_after": after.get(name),
            "error": _num(errors.get(name)),
        })
    return out, source


def round_rows(data: ArtifactData) -> list[dict]:
    """One row per correction round: predicted vs measured, and what happened next and why."""
    from spdy.passes.algo.budget_correction import OVERSHOOT, judge_round
    r = data.report
    rounds = r.get("rounds") or []
    target = _num(r.get("requested_speedup")) or 1.0
    solves = [p for p in data.passlog if p.get("pass") in ("solve-sparsity", "solve-channels")]
    calibs = [p for p in data.passlog if p.get("pass") == "calibrate-table"]
    adopted = adopted_round(r)
    out = []
    for i, rd in enumerate(rounds):
        measured, predicted = _num(rd.get("measured_speedup")), _num(rd.get("predicted_speedup"))
        solve = (solves[i].get("stats") or {}) if i < len(solves) else {}
        calib = (calibs[i].get("stats") or {}) if i < len(calibs) else (rd.get("channel_calibration") or {})
        if calib.get("calibrated"):
            cal = (f"table calibrated in place ({calib.get('model', '')}): the same profile now predicts "
                   f"{calib.get('calibrated_predicted_speedup', rd.get('calibrated_predicted_speedup', 0)):.2f}x")
        else:
            cal = calib.get("why") or ""
        if measured is None:
            verdict = "not measured"
        else:
            o = judge_round(measured, predicted, target)
            if o.stop:
                verdict = f"met the target ({measured:.2f}x for {target:.2f}x): no further round"
            elif not o.meets:
                verdict = f"short of the target ({measured:.2f}x < {target:.2f}x): re-solved with a tighter budget"
            else:
                verdict = (f"more than {OVERSHOOT:.0%} above the target ({measured:.2f}x): re-solved with a "
                           "looser budget to keep accuracy")
        out.append({
            "round": rd.get("round", i), "budget_scale": _num(solve.get("budget_scale")),
            "budget_ms": _num(solve.get("budget_ms")), "predicted": predicted, "measured": measured,
            "p10_p90": rd.get("measured_speedup_p10_p90"),
            "calibrated_predicted": _num(rd.get("calibrated_predicted_speedup")),
            "measurements": len(rd.get("measurements") or []) or 1,
            "artifact_ms": _num((rd.get("artifact") or {}).get("median_ms")),
            "dense_ms": _num((rd.get("dense_artifact") or {}).get("median_ms")),
            "adopted": rd is adopted, "verdict": verdict, "calibration": cal,
        })
    return out


def pass_rows(data: ArtifactData) -> list[dict]:
    """The passes in the order they ran, with start and wall time (seconds from the first)."""
    out, t = [], 0.0
    for p in data.passlog:
        wall = _num(p.get("wall_s")) or 0.0
        out.append({"seq": p.get("seq", len(out)), "pass": p.get("pass", "?"), "options": p.get("options", ""),
                    "status": p.get("status", ""), "start_s": t, "wall_s": wall,
                    "stats": p.get("stats") or {}})
        t += wall
    return out


def cache_rows(data: ArtifactData) -> list[dict]:
    """Cache hits and misses: the kernel tuner's, and each pass's that reports any."""
    out = []
    tuner = data.report.get("tuner")
    if isinstance(tuner, dict):
        out.append({"cache": "kernel tuning (tuner)", "hits": tuner.get("hits"), "misses": tuner.get("misses"),
                    "note": f"{tuner.get('tuned', 0)} kernels tuned in {tuner.get('tune_s', 0):.1f} s"})
    for p in data.passlog:
        s = p.get("stats") or {}
        if "cache_hits" in s or "cache_misses" in s:
            out.append({"cache": f"latency database ({p.get('pass')}, #{p.get('seq')})", "hits": s.get("cache_hits"),
                        "misses": s.get("cache_misses"), "note": f"{s.get('timed_options', '')} options timed"
                        if "timed_options" in s else ""})
        if p.get("pass") == "build-database" and ("reused" in s or "built" in s):
            out.append({"cache": f"reconstruction database (#{p.get('seq')})", "hits": s.get("reused"),
                        "misses": s.get("built"), "note": f"{s.get('db_mb', '?')} MB on disk"})
    return out


def channel_rows(data: ArtifactData) -> list[dict]:
    """mode='channels': each coupling group's width before and after, with its error."""
    ch = data.report.get("channels") or {}
    widths = ch.get("widths") or {}
    groups = (ch.get("problem") or {}).get("groups") or []
    out = []
    for g in groups:
        name = g.get("name")
        kept = widths.get(name, g.get("size"))
        errs = dict(zip(g.get("widths") or [], g.get("errors") or []))
        out.append({"group": name, "id": g.get("id"), "size": g.get("size"), "kept": kept,
                    "prunable": g.get("prunable", True), "reason": g.get("reason", ""),
                    "members": len(g.get("members") or []), "error": _num(errs.get(kept))})
    if not out:
        out = [{"group": k, "id": None, "size": None, "kept": v, "prunable": True, "reason": "", "members": None,
                "error": None} for k, v in widths.items()]
    return out
