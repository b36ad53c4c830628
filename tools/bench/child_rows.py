"""One bench row from a child process: a crash, an out-of-memory kill or a hang is one row with
its reason, not the end of a bench that walks many models."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_child_row(script: str, args: list[str], name: str, timeout: float, failed: str = "failed") -> dict:
    """Run `python script *args` and return the last JSON line it printed, plus wall_s; on a
    timeout or a failure, {"model": name, "status": "timeout" | failed, "error": why}."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout,
                           cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"model": name, "status": "timeout", "error": f"over --timeout {timeout} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        if p.returncode == -9:
            tail = "killed by SIGKILL (most likely the kernel's out-of-memory killer)"
        return {"model": name, "status": failed, "error": f"child exit {p.returncode}: {tail[:500]}",
                "wall_s": round(time.perf_counter() - t0, 1)}
    return json.loads(lines[-1]) | {"wall_s": round(time.perf_counter() - t0, 1)}


def add_walk_arguments(ap, timeout: float, what: str = "model") -> None:
    """--timeout, --resume, --redo, --out and the child's hidden --one, for a bench walking models."""
    import argparse
    ap.add_argument("--timeout", type=float, default=timeout, help=f"seconds per {what}")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out")
    ap.add_argument("--redo", default="", help=f"comma list of {what}s to run again even if --resume has them")
    ap.add_argument("--out", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)


def resumed_rows(out, args) -> list[dict]:
    """The rows --resume keeps from `out` (a Path): all of them but those --redo names."""
    import json
    if not (args.resume and out.exists()):
        return []
    redo = {m.strip() for m in args.redo.split(",") if m.strip()}
    return [r for r in json.loads(out.read_text())["models"] if r["model"] not in redo]
