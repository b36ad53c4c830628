"""Where spdy keeps its caches (latency DB, reconstruction DB, parsed datasets).

One place decides the root, so `SPDY_CACHE_DIR` moves all of them together (tests point it
at a per-session temporary directory).
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$SPDY_CACHE_DIR, else ~/.cache/spdy."""
    base = os.environ.get("SPDY_CACHE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "spdy"
