"""State shared by the kernel emitters while one model is lowered to Relax.

The lowering calls an emitter per conv/linear; the emitters need the target, the tuner
(which knows the best schedule parameters for an op signature), the sparse profile (which
layers become block-sparse kernels) and a way to give every kernel a unique symbol.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EmitContext:
    target: Any                      # tvm.target.Target
    num_threads: int = 1
    tuner: Any = None                # spdy.runtime.tune tuner, or None for default parameters
    sparse: dict[str, dict] = field(default_factory=dict)  # layer qualname -> {"format", "sparsity"}
    stats: dict[str, int] = field(default_factory=dict)    # counters: kernels emitted per kind
    _symbols: set[str] = field(default_factory=set)

    def unique_symbol(self, base: str) -> str:
        """A global symbol no other kernel of this module uses (TVM needs them unique)."""
        stem = re.sub(r"[^0-9A-Za-z_]", "_", base) or "kernel"
        name, i = stem, 1
        while name in self._symbols:
            name = f"{stem}_{i}"
            i += 1
        self._symbols.add(name)
        return name

    def count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1
