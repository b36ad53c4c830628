"""The state a pipeline run shares between passes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spdy.runtime.threads import resolve_threads


@dataclass
class CompileContext:
    model: Any                               # the user's torch module (never mutated)
    inputs: Any                              # spdy.ir.trace.ExampleInputs
    target: Any                              # spdy.runtime.target.TargetSpec
    options: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None              # passlog.jsonl and graph dumps go here when set
    dump_graphs: bool = False

    @property
    def num_threads(self) -> int:
        """TVM threads of this compile (spdy.runtime.threads' rule: the compile's num_threads
        option, else TVM_NUM_THREADS, else the target's core count)."""
        return resolve_threads(self.options.get("num_threads"), default=getattr(self.target, "num_cores", None))

    def need(self, key: str):
        if key not in self.artifacts:
            raise KeyError(f"artifact {key!r} is not available; a pass providing it must run first")
        return self.artifacts[key]
