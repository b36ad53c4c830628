"""Template-parameter autotuner with a latency-database cache.

For an op signature and target, build each candidate parameter set (a TVMScript template
builds in ~0.05-0.5 s), time it with TVM's time_evaluator, keep the fastest and cache
(params, latency) in the LatencyDB so later compiles (and other models with the same op
shapes) reuse it. ``mode="default"`` skips search and DB and returns each kernel's default
parameters (fast; used by tests). The thread count (spdy.runtime.threads' rule, with the
target's core count as the default) is fixed when the tuner is created and is part of the
cache key.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .latency_db import LatencyDB, LatencyKey
from .measure import Measurement
from .threads import ensure_threads

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    params: dict
    measurement: Measurement
    trials: list[tuple[dict, float | None]]  # (params, median seconds or None if it failed)


def tune_kernel(signature: str, candidates: Sequence[dict], build_fn: Callable[[dict], tuple[Any, list]], *,
                repeat: int = 5, min_repeat_ms: float = 10.0, func_name: str = "main", device=None) -> TuneResult:
    """Build and time every candidate; return the fastest.

    ``build_fn(params) -> (runtime module exposing func_name, args)``. A candidate that fails
    to build or run is skipped (logged); if all fail, RuntimeError names the signature.
    Reusable by other kernel families (the sparse kernels pass their own build_fn).
    ``device`` (spdy.runtime.device; default this CPU) is where candidates are timed: on a
    remote device the next candidate is built here while the previous one is timed there, and
    a tracker pool times several candidates at once. A RemoteDeviceError (the device is gone)
    propagates; it is not a failed candidate.
    """
    from spdy.errors import RemoteDeviceError
    from spdy.runtime.device import LOCAL
    device = device or LOCAL
    pending, trials = [], []
    for params in candidates:
        try:
            mod, args = build_fn(params)
        except Exception as e:  # a template point that does not compile is not fatal
            log.info("tune %s: candidate %s failed to build: %s", signature, params, e)
            trials.append((params, None))
            continue
        fut = device.submit_time_module(mod, func_name, args, repeat=repeat, min_repeat_ms=min_repeat_ms)
        pending.append((params, fut))
        trials.append((params, None))
    best, best_m = None, None
    for params, fut in pending:
        try:
            m = fut.result()
        except RemoteDeviceError:
            raise
        except Exception as e:  # noqa: BLE001 - the candidate failed to run
            log.info("tune %s: candidate %s failed: %s", signature, params, e)
            continue
        i = next(j for j, (p, t) in enumerate(trials) if p is params)
        trials[i] = (params, m.median)
        if best_m is None or m.median < best_m.median:
            best, best_m = params, m
    if best is None:
        raise RuntimeError(f"tuning {signature}: all {len(trials)} candidates failed")
    return TuneResult(best, best_m, trials)


def target_cores(target) -> int | None:
    try:
        n = int(target.attrs["num-cores"])
        return n if n > 0 else None
    except Exception:
        return None


@dataclass
class Tuner:
    """The object the emitters find in ``EmitContext.tuner``."""
    target: Any
    num_threads: int | None = None
    mode: str = "tune"                 # "tune" | "default"
    db: LatencyDB | None = None        # None -> the default database (opened lazily)
    use_db: bool = True
    repeat: int = 5
    min_repeat_ms: float = 10.0
    max_candidates: int = 16
    # A sparse kernel's best schedule changes slowly with its sparsity: an option within this many
    # basis points of a level already tuned is timed with that level's parameters only (one build,
    # not up to 16). The latency table times ~11 levels per format and layer shape; fully tuning
    # each cost 10-27 s per option on a 2-core VM, over an hour for MiniLM with all formats. The
    # default grid's first two timed levels are 2016 bp apart (40% and 60.16%): within reach.
    reuse_within_bp: int = 2500
    device: Any = None                 # spdy.runtime.device.Device; None -> this CPU
    stats: dict = field(default_factory=lambda: {"hits": 0, "misses": 0, "tuned": 0, "tune_s": 0.0})

    def __post_init__(self):
        if self.mode not in ("tune", "default"):
            raise ValueError(f"mode must be 'tune' or 'default', not {self.mode!r}")
        self.num_threads = ensure_threads(self.num_threads, default=target_cores(self.target))

    def _db(self) -> LatencyDB | None:
        if not self.use_db:
            return None
        if self.db is None:
            try:
                self.db = LatencyDB()
            except Exception as e:  # unwritable cache dir etc.: tune without caching
                import warnings
                warnings.warn(f"latency database unavailable ({e}); tuning without a cache",
                              RuntimeWarning, stacklevel=2)
                self.use_db = False
                return None
        return self.db

    def identity(self):
        """(host, threads) of the device timings come from: the latency DB key fields."""
        from spdy.runtime.device import LOCAL
        ident = (self.device or LOCAL).identity(self.num_threads)
        return ident.host, ident.threads

    def key(self, signature: str, source_hash: str, *, format: str = "dense", level_bp: int = 0) -> LatencyKey:
        host, threads = self.identity()
        return LatencyKey.make(signature, self.target, threads, source_hash,
                               format=format, level_bp=level_bp, host=host)

    def tune(self, signature: str, candidates: Sequence[dict], build_fn, *, source_hash: str,
             format: str = "dense", level_bp: int = 0, default: dict | None = None,
             family: tuple[str, str] | None = None) -> tuple[dict, float | None]:
        """(best params, median seconds) for the op: DB hit, else search and cache.

        Without a hit, a schedule already found for a neighbour sparsity level (reuse_within_bp)
        or, given `family` = (prefix, suffix) of signatures that differ only in the epilogue, for
        a kernel of that family at the same format and level, is timed alone (one build, not a
        search of up to max_candidates): the loop nest is the same, the epilogue a small part."""
        if self.mode == "default":
            return (default if default is not None else candidates[0]), None
        db = self._db()
        key = self.key(signature, source_hash, format=format, level_bp=level_bp)
        if db is not None:
            hit = db.get(key)
            if hit is not None:
                self.stats["hits"] += 1
                return hit.params, hit.latency_s
        self.stats["misses"] += 1
        t0 = time.time()
        cands = list(candidates)[: self.max_candidates]
        if default is not None and default not in cands:
            cands.insert(0, default)
        near = db.nearest(key, self.reuse_within_bp) if db is not None and level_bp > 0 and self.reuse_within_bp else None
        seed = near[1] if near is not None else None
        if seed is None and family is not None and db is not None:
            seed = db.sibling(key, *family)
        res = None
        if seed is not None and seed in list(candidates):
            try:
                res = tune_kernel(signature, [seed], build_fn, repeat=self.repeat,
                                  min_repeat_ms=self.min_repeat_ms, device=self.device)
                self.stats["reused"] = self.stats.get("reused", 0) + 1
            except RuntimeError:   # the seed's schedule does not build here: search
                res = None
        if res is None:
            res = tune_kernel(signature, cands, build_fn, repeat=self.repeat, min_repeat_ms=self.min_repeat_ms,
                              device=self.device)
        self.stats["tuned"] += 1
        self.stats["tune_s"] += time.time() - t0
        if db is not None:
            m = res.measurement
            db.put(key, res.params, m.median, m.p10, m.p90, m.n)
        return res.params, res.measurement.median

    def best_params(self, signature: str, candidates: Sequence[dict], build_fn, *, default: dict | None = None,
                    source_hash: str, format: str = "dense", level_bp: int = 0) -> dict:
        return self.tune(signature, candidates, build_fn, source_hash=source_hash, format=format,
                         level_bp=level_bp, default=default)[0]
