"""What a pass is.

A pass is a small frozen dataclass: its options are fields, so `solve-sparsity{buckets=10000}`
round-trips as text. It declares the artifacts it `requires` and `provides` (names in
ctx.artifacts), never prints, never writes files and never imports tvm (it calls
spdy.runtime for that). `run` returns a PassResult with the (possibly new) graph, whether it
changed, and a dict of stats for the pass log.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch.fx


@dataclass
class PassResult:
    gm: torch.fx.GraphModule | None
    modified: bool = False
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pass:
    name: ClassVar[str] = "pass"
    requires: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()

    def run(self, gm, ctx) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_text(self) -> str:
        """`name{k=v,...}`: parseable back with registry.parse_pass."""
        opts = self.options()
        if not opts:
            return self.name
        return self.name + "{" + ",".join(f"{k}={_fmt(v)}" for k, v in opts.items()) + "}"


def _fmt(v) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)
