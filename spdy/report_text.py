"""A compile's report and pass log as text, for `spdy compile`, `spdy inspect` and `spdy demo`.

Its own module so the CLI and the demo (which the CLI runs) both print the same way without
importing each other.
"""
from __future__ import annotations

import sys

from spdy.errors import UsageError


def _fmt_ms(d: dict | None) -> str:
    return f"{d['median_ms']:.3f} ms" if d else "-"


def print_report(report: dict, out=sys.stdout) -> None:
    print(f"target     {report.get('target')}  threads={report.get('threads')}", file=out)
    print(f"traced by  {report.get('trace_method')}   layers: {len(report.get('layers', []))}"
          f"   compile: {report.get('compile_s')} s", file=out)
    base = report.get("baseline")
    if base:
        vs = base.get("speedup_vs_torch_eager")
        ort = base.get("onnxruntime")
        print(f"latency    spdy dense artifact {_fmt_ms(base.get('dense_artifact'))}   "
              f"PyTorch eager {_fmt_ms(base.get('torch_eager'))}   "
              + (f"onnxruntime {_fmt_ms(ort)}   " if ort else "")
              + (f"(spdy is {vs:.2f}x PyTorch eager" + (f", {base['speedup_vs_onnxruntime']:.2f}x onnxruntime)"
                                                         if ort else ")")
                 if vs else f"(measured on {base.get('measured_on')})"),
              file=out)
    for r in report.get("rounds", []):
        pred = r.get("predicted_speedup")
        print(f"round {r.get('round')}   predicted {f'{pred:.2f}x' if pred else '-':>6}   measured "
              f"{r['measured_speedup']:.2f}x  (artifact {_fmt_ms(r['artifact'])}, dense {_fmt_ms(r['dense_artifact'])}, "
              + (f"{r['speedup_vs_torch_eager']:.2f}x PyTorch eager"
                 + (f", {r['speedup_vs_onnxruntime']:.2f}x onnxruntime)" if r.get("speedup_vs_onnxruntime") else ")")
                 if r.get("speedup_vs_torch_eager") else f"on {r.get('measured_on')})"), file=out)
        spread = r.get("measured_speedup_p10_p90")
        if spread and spread[1] > 1.25 * spread[0]:
            print(f"           the per-round speedups ranged {spread[0]:.2f}x-{spread[1]:.2f}x: this machine changed "
                  "speed while measuring; compile again on a quieter machine (or fewer threads) to trust it", file=out)
        shift = r.get("machine_state_shift")
        if shift:
            print(f"           its sparse layers took {shift:.2f}x their calibrated times: the machine changed speed "
                  "since the round before, so this round did not correct the latency table", file=out)
    for name, why in (report.get("reference_notes") or {}).items():
        print(f"note       no {name} row: {why}", file=out)
    prof = report.get("profile") or {}
    if any(v.get("format") != "dense" for v in prof.values()):
        print(f"profile    {'layer':<32} {'format':<14} {'dtype':<5} {'sparsity':>8}", file=out)
        for name, v in prof.items():
            print(f"           {name:<32} {v['format']:<14} {v.get('dtype', 'fp32'):<5} {v['sparsity']:>8.2%}", file=out)


def print_passlog(records: list[dict], only: str | None = None, out=sys.stdout) -> None:
    rows = [r for r in records if only is None or r["pass"] == only]
    if only and not rows:
        raise UsageError(f"no pass named {only!r} in this artifact; passes: "
                         f"{', '.join(r['pass'] for r in records)}")
    print(f"{'#':>2}  {'pass':<16} {'status':<7} {'wall s':>8}  stats", file=out)
    for r in rows:
        stats = r.get("stats") or {}
        text = ", ".join(f"{k}={v}" for k, v in stats.items()) if not r.get("error") else r["error"]
        print(f"{r['seq']:>2}  {r['pass']:<16} {r['status']:<7} {r.get('wall_s', 0):>8.3f}  {text}", file=out)
