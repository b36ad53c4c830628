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


def profile_calls_interleaved(runners: dict, *, runs: int = 10, warmup: int = 2) -> dict[str, dict[str, float]]:
    """{runner name: {function symbol: median seconds per run of `main`}}, the runners' runs
    alternating (A, B, A, B, ...) so that a stretch of slow machine hits them alike.

    `runners` maps names to ArtifactRunners (random inputs of the manifest's shapes). Each run
    of `main` gives one total per symbol (a kernel called twice in one run counts twice); the
    median over `runs` damps load bursts. Symbols include TVM builtins (allocation, reshape)
    as well as our kernels.
    """
    import tvm
    from tvm.runtime.vm import VMInstrumentReturnKind

    inputs = {k: [tvm.runtime.tensor(a, r.device) for a in r.default_inputs()] for k, r in runners.items()}
    for k, r in runners.items():
        for _ in range(warmup):
            r.vm["main"](*inputs[k])
    per_run: dict[str, list[dict[str, float]]] = {k: [] for k in runners}
    current: dict[str, float] = defaultdict(float)
    started: dict[str, float] = {}

    def instrument(func, symbol, before, ret, *args):
        now = time.perf_counter()
        if before:
            started[symbol] = now
        elif symbol in started:
            current[symbol] += now - started.pop(symbol)
        return int(VMInstrumentReturnKind.NO_OP)

    for r in runners.values():
        r.vm.set_instrument(instrument)
    try:
        for _ in range(runs):
            for k, r in runners.items():
                current.clear()
                r.vm["main"](*inputs[k])
                per_run[k].append(dict(current))
    finally:
        for r in runners.values():
            r.vm.set_instrument(None)
    out = {}
    for k, rs in per_run.items():
        symbols = sorted({s for run in rs for s in run})
        out[k] = {s: float(np.median([run.get(s, 0.0) for run in rs])) for s in symbols}
    return out


def profile_calls(runner, *, runs: int = 10, warmup: int = 2) -> dict[str, float]:
    """{function symbol: median seconds per run of `main`} of one ArtifactRunner."""
    return profile_calls_interleaved({"_": runner}, runs=runs, warmup=warmup)["_"]


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
