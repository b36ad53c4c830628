"""TVM's worker threads: TVM runs on one thread unless TVM_NUM_THREADS is set before its
thread pool starts, so spdy sets it (once, without overriding the user) before any TVM run."""
from __future__ import annotations

import os


def ensure_threads(n: int) -> int:
    """Set TVM_NUM_THREADS to n unless the user already chose; returns the value in force."""
    current = os.environ.get("TVM_NUM_THREADS")
    if current:
        return int(current)
    os.environ["TVM_NUM_THREADS"] = str(max(1, int(n)))
    return int(n)
