"""What a cached timing or a saved artifact depends on besides its inputs: the source of the
kernels that produced it and the TVM build that compiled it.

Every latency-database key and every manifest records these, so a changed kernel template or
another TVM never reuses timings, tuned parameters or artifacts made by the old one. One
function each, so all caches agree on what "the same kernel source" means.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]   # the spdy package directory


def _expand(pattern: str) -> list[Path]:
    """A path or glob relative to the spdy package; a glob's matches sorted by path."""
    path = PACKAGE / pattern
    if any(c in pattern for c in "*?["):
        return sorted(PACKAGE.glob(pattern))
    if not path.is_file():
        raise FileNotFoundError(f"source_hash: {pattern!r} is not a file under {PACKAGE}")
    return [path]


@functools.lru_cache(maxsize=None)
def _hash(patterns: tuple[str, ...], exclude: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    seen: set[Path] = set()
    skip = {PACKAGE / e for e in exclude}
    for pattern in patterns:
        for p in _expand(pattern):
            if p not in seen and p not in skip:
                seen.add(p)
                h.update(p.read_bytes())
    if not seen:
        raise FileNotFoundError(f"source_hash: nothing under {PACKAGE} matches {list(patterns)}")
    return h.hexdigest()[:16]


def source_hash(*paths_or_globs: str, exclude: tuple[str, ...] = ()) -> str:
    """16 hex digits of SHA-256 over the files' bytes, in the order given (a glob's matches
    sorted, a file named twice counted once, the files in ``exclude`` left out). Paths are
    relative to the spdy package, e.g.
    ``source_hash("runtime/kernels/gemm.py", "runtime/kernels/tvmscript.py")`` or
    ``source_hash("runtime/int8/*.py")``.

    Only the bytes are hashed, not the names: the GEMM and sparse-kernel keys of existing
    latency databases were made that way and stay valid. Name every file whose edit can
    change a kernel's speed or its tuned parameters; one left out lets stale timings through.
    Computed once per process (the sources do not change under a running compile).
    """
    if not paths_or_globs:
        raise ValueError("source_hash needs at least one path or glob")
    return _hash(tuple(paths_or_globs), tuple(exclude))


def tvm_version() -> str:
    """The TVM build in use ("unknown" when TVM cannot be imported: the latency database
    itself does not need TVM)."""
    try:
        import tvm
    except ImportError:
        return "unknown"
    return str(tvm.__version__)
