"""The state a pipeline run shares between passes, typed.

- `CompileOptions`: what the user asked for (spdy.compile's options, validated by spdy.api);
  frozen, so no pass changes what was asked.
- the services every pass uses, as fields of `CompileContext`: the target, the measuring
  device, the tuner, the caches, the thread count (one rule: spdy.runtime.threads) and the
  progress callback. A pass never looks them up by name or falls back to its own default.
- `Artifacts`: what passes hand each other (``ctx.artifacts[name]``). A pass may write only
  the names in its `provides`: the pipeline tells the artifacts which pass runs, and an
  undeclared write raises in debug mode (`debug_mode()`: on under pytest and with
  SPDY_DEBUG=1) and is recorded in the pass log otherwise, so a missing declaration fails the
  tests without breaking a user's compile. Code outside a pass (the compile driver, a test
  setting up a context) writes freely.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from spdy.errors import PipelineError
from spdy.runtime.device import LOCAL, Device
from spdy.runtime.threads import resolve_threads


def debug_mode() -> bool:
    """Strict artifact declarations and graph verification after every pass: SPDY_DEBUG=1
    turns them on, SPDY_DEBUG=0 off; unset, they are on while pytest runs a test."""
    flag = os.environ.get("SPDY_DEBUG", "").strip().lower()
    if flag:
        return flag not in ("0", "false", "no", "off")
    return "PYTEST_CURRENT_TEST" in os.environ


@dataclass(frozen=True)
class CompileOptions:
    """spdy.compile's options (its docstring says what each means), validated."""
    speedup: float = 1.0
    target: Any = "host"                     # a TargetSpec once validated
    mode: str = "sparse"                     # "sparse" | "channels"
    method: str = "spdy"                     # a search method (spdy.passes.search_methods)
    formats: tuple[str, ...] | None = None   # None: every format the target runs
    profile: Mapping | None = None           # a given per-layer profile: compiled as given, no search
    seed: int = 0
    num_threads: int | None = None           # None: spdy.runtime.threads' rule
    tune: bool = True
    measure: Any = True                      # False | True | "local" | "rpc://.." | "tracker://.." | a Device
    workdir: Path | None = None
    dump_graphs: bool = False
    n_samples: int = 1024
    max_evals: int = 0
    rounds: int = 3
    grid_levels: int = 41
    keep_dense: tuple[str, ...] | None = None  # None: spdy.checks.default_keep_dense (resolved by the driver)
    global_adaprune: int = 0
    compare_onnxruntime: bool = True
    batch_sizes: tuple[int, ...] | None = None  # one library per size in the artifact (compiler/buckets.py)


@dataclass(frozen=True)
class Caches:
    """The persistent caches a compile reads and fills (both under spdy.cache.cache_root())."""
    latency_db: bool = True             # the latency table reuses and stores layer timings
    recon_dir: Path | None = None       # the reconstruction database's directory (None: the default)

    def latency(self):
        """The latency database, or None when timings are not cached."""
        if not self.latency_db:
            return None
        from spdy.runtime.latency_db import LatencyDB
        return LatencyDB()


class Artifacts(dict):
    """ctx.artifacts: a dict that checks each write against the running pass's `provides`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._writer = None
        self._undeclared: list[str] = []

    @contextlib.contextmanager
    def written_by(self, pass_):
        """While `pass_` runs: its writes are checked. Yields the list of undeclared names
        written (filled only outside debug mode; in it the write raises)."""
        saved = self._writer, self._undeclared
        self._writer, self._undeclared = pass_, []
        try:
            yield self._undeclared
        finally:
            self._writer, self._undeclared = saved

    def _check(self, key) -> None:
        p = self._writer
        if p is None or key in p.provides:
            return
        if debug_mode():
            raise PipelineError(f"pass {p.name} wrote artifact {key!r} without declaring it; add {key!r} to "
                                f"{type(p).__name__}.provides")
        if key not in self._undeclared:
            self._undeclared.append(key)

    def __setitem__(self, key, value):
        self._check(key)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self._check(key)
        super().__delitem__(key)

    def setdefault(self, key, default=None):
        if key not in self:
            self._check(key)
        return super().setdefault(key, default)

    def update(self, *args, **kwargs):
        new = dict(*args, **kwargs)
        for key in new:
            self._check(key)
        super().update(new)

    def pop(self, key, *default):
        if key in self:
            self._check(key)
        return super().pop(key, *default)

    def popitem(self):
        raise TypeError("artifacts are removed by name (pop), so the write can be checked")

    def clear(self):
        for key in self:
            self._check(key)
        super().clear()

    def __ior__(self, other):
        self.update(other)
        return self


# what a child context (another model built inside this compile) starts with
CHILD_SHARED = ("dense_executable", "predicted_speedup", "onnxruntime_session", "rounds")


@dataclass
class CompileContext:
    model: Any                                   # the user's torch module (never mutated)
    inputs: Any                                  # spdy.ir.trace.ExampleInputs
    target: Any = None                           # spdy.runtime.target.TargetSpec
    options: CompileOptions = field(default_factory=CompileOptions)
    device: Device = LOCAL                       # where everything is timed (spdy.runtime.device)
    tuner: Any = None                            # spdy.runtime.tune.Tuner; None: default kernel parameters
    caches: Caches = field(default_factory=Caches)
    calib_source: Any = None                     # the user's calibration data (collected: artifacts["calib"])
    progress: Callable[[str, int, int], None] | None = None
    workdir: Path | None = None                  # passlog.jsonl and graph dumps go here when set
    artifacts: Artifacts = field(default_factory=Artifacts)
    passlog: list = field(default_factory=list)  # one record per pass run, failures included
    instruments: list | None = None              # None: spdy.passes.instruments.default_instruments

    def __post_init__(self):
        if not isinstance(self.options, CompileOptions):
            raise TypeError(f"options must be a CompileOptions, got {type(self.options).__name__}")
        if not isinstance(self.artifacts, Artifacts):
            self.artifacts = Artifacts(self.artifacts)
        if self.instruments is None:
            from spdy.passes.instruments import default_instruments
            self.instruments = default_instruments(self.workdir, dump_graphs=self.options.dump_graphs,
                                                   verify=debug_mode())

    @property
    def num_threads(self) -> int:
        """TVM threads of this compile (spdy.runtime.threads' rule: the num_threads option,
        else TVM_NUM_THREADS, else the target's core count)."""
        return resolve_threads(self.options.num_threads, default=getattr(self.target, "num_cores", None))

    def need(self, key: str):
        if key not in self.artifacts:
            raise KeyError(f"artifact {key!r} is not available; a pass providing it must run first")
        return self.artifacts[key]

    def child(self, model) -> "CompileContext":
        """A context for another torch model built inside this compile (a pruned model, a
        narrowed anchor): the same inputs, target, options, services, pass log and
        instruments; of the artifacts only CHILD_SHARED (shared objects, not copies)."""
        return dataclasses.replace(self, model=model, artifacts=Artifacts(
            {k: self.artifacts[k] for k in CHILD_SHARED if k in self.artifacts}))
