"""Real processes for the cache fault tests: start a Python child running a snippet, read the
lines it prints as it commits work, kill it with SIGKILL mid-way."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spawn(code: str, *args, env: dict | None = None) -> subprocess.Popen:
    """A child running `code` (dedented; sys.argv[1:] = args) with the repo importable."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, cwd=str(ROOT))


def read_lines(proc: subprocess.Popen, n: int, timeout_s: float = 120.0) -> list[str]:
    """The child's first n stdout lines (fails with its stderr if it ends or stalls first)."""
    out, deadline = [], time.monotonic() + timeout_s
    while len(out) < n:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child ended after {len(out)} lines: {proc.stderr.read()[-2000:]}")
        out.append(line.strip())
        if time.monotonic() > deadline:
            raise AssertionError(f"child too slow: {len(out)} of {n} lines in {timeout_s} s")
    return out


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def finish(proc: subprocess.Popen, timeout_s: float = 120.0) -> str:
    """Wait for a child that must succeed; its stdout."""
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err[-3000:]
    return out
