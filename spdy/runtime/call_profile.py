"""Per-kernel time inside a running artifact (where the time of a whole model goes).

The latency table times each layer alone; the artifact runs them back to back, with the
previous layer's output still in cache and Relax's memory planning. Whether the table's sum
matches the artifact is the question every budget depends on, and only timing the kernels
*in place* answers it. The Relax VM calls an instrument before and after every Call
instruction; we time each call with a monotonic clock and sum per function symbol over
several runs of `main`. The instrument's own cost (a Python callback, about a microsecond
or two) is counted in each call: fine for millisecond kernels, visible for tiny ones.
"""
from __future__ import annotations

import time
from collections import defaultdict

import numpy as np


def profile_calls(runner, arrays: list[np.ndarray] | None = None, *, runs: int = 10, warmup: int = 2) -> dict:
    """{function symbol: median seconds per run of `main`} for every function the VM calls.

    `runner` is an ArtifactRunner. Each run of `main` gives one total per symbol (a kernel
    called twice in one run counts twice); the median over `runs` damps load bursts.
    Symbols include TVM builtins (allocation, reshape) as well as our kernels.
    """
    import tvm
    from tvm.runtime.vm import VMInstrumentReturnKind

    if arrays is None:
        arrays = [np.random.default_rng(0).standard_normal(i["shape"]).astype(i["dtype"])
                  if i["dtype"].startswith("float") else np.zeros(i["shape"], i["dtype"])
                  for i in runner.manifest["inputs"]]
    inputs = [tvm.runtime.tensor(a, runner.device) for a in arrays]
    for _ in range(warmup):
        runner.vm["main"](*inputs)
    per_run: list[dict[str, float]] = []
    current: dict[str, float] = defaultdict(float)
    started: dict[str, float] = {}

    def instrument(func, symbol, before, ret, *args):
        now = time.perf_counter()
        if before:
            started[symbol] = now
        elif symbol in started:
            current[symbol] += now - started.pop(symbol)
        return int(VMInstrumentReturnKind.NO_OP)

    runner.vm.set_instrument(tvm.runtime.convert(instrument) if hasattr(tvm.runtime, "convert") else instrument)
    try:
        for _ in range(runs):
            current.clear()
            runner.vm["main"](*inputs)
            per_run.append(dict(current))
    finally:
        runner.vm.set_instrument(None)
    symbols = sorted({s for r in per_run for s in r})
    return {s: float(np.median([r.get(s, 0.0) for r in per_run])) for s in symbols}


def per_layer(calls: dict[str, float], layer_names: list[str]) -> dict[str, float]:
    """Sum the calls whose symbol belongs to each layer; the rest is returned under "(other)".

    Our emitters name a layer's kernels `<qualname with _ for .>_<part>` (`layer1_0_conv1_pad`,
    `..._im2col`, `..._conv`, `..._bsr16x1`), so a symbol belongs to the layer with the longest
    matching prefix."""
    out = {n: 0.0 for n in layer_names}
    other = 0.0
    prefixes = sorted(((n.replace(".", "_") + "_", n) for n in layer_names), key=lambda p: -len(p[0]))
    for sym, t in calls.items():
        owner = next((n for pre, n in prefixes if sym.startswith(pre)), None)
        if owner is None:
            other += t
        else:
            out[owner] += t
    out["(other)"] = other
    return out
