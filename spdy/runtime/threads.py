"""How many threads TVM runs spdy's work on: one rule, decided in one place.

TVM runs on one thread unless TVM_NUM_THREADS is set, and it reads the variable once, when
its thread pool first starts; a running pool keeps its size. So the count is decided before
any TVM run, written to TVM_NUM_THREADS, and everything keyed or recorded by thread count
(latency-database rows, manifests, reference runtimes) uses the same number.

The rule (`resolve_threads`), first that applies:

1. an explicit request: the caller's ``num_threads`` (``spdy.compile(num_threads=...)``,
   ``--threads``, ``Tuner(num_threads=...)``);
2. TVM_NUM_THREADS as already set: by the user, or by an earlier spdy call in this process
   (whose pool may already run at that size);
3. a default the caller knows: the target's ``num-cores``, a loaded artifact's manifest;
4. the cores this process may run on.

`ensure_threads` applies it: it writes the result to TVM_NUM_THREADS (so an explicit request
replaces the user's setting, a default never does) and returns it.
"""
from __future__ import annotations

import os

ENV = "TVM_NUM_THREADS"


def host_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _env_threads() -> int | None:
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{ENV}={text!r} is not a whole number; set it to a thread count like 2 "
                         f"or unset it") from None
    return n if n > 0 else None


def resolve_threads(requested: int | None = None, *, default: int | None = None) -> int:
    """The thread count by the module's rule (pure: reads the environment, changes nothing)."""
    for n in (requested, _env_threads(), default):
        if n:
            if int(n) < 1:
                raise ValueError(f"a thread count must be >= 1, got {n}")
            return int(n)
    return host_cores()


def ensure_threads(requested: int | None = None, *, default: int | None = None) -> int:
    """Decide the thread count by the rule and put it in force (TVM_NUM_THREADS); returns it."""
    n = resolve_threads(requested, default=default)
    os.environ[ENV] = str(n)
    return n
