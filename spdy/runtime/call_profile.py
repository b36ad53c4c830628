"""Per-kernel time inside a running artifact (where the time of a whole model goes).

The latency table times each layer alone; the artifact runs them back to back, with the
previous layer's output still in cache and Relax's memory planning. Whether the table's sum
matches the artifact is the question every budget depends on, and only timing the kernels
*in place* answers it. The Relax VM calls an instrument before and after every Call
instruction; we time each call with a monotonic clock and sum per function symbol over
several runs of `main`. The instrument's own cost (a Python callback on each side of every
call, a microsecond or two) would be counted in each call: on an int8 MiniLM (some 400 VM
calls a run, most of them views and allocations) it was a fifth of the artifact's time, and
the sum of the calls did not explain the end-to-end time. So every run of `main` with the
instrument is followed by one without, and the difference per call (half of it lies inside
the timed intervals) is taken off each call (`instrument_cost`).
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
    calls_per_run: dict[str, list[dict[str, int]]] = {k: [] for k in runners}
    walls: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    current: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    started: dict[str, float] = {}

    def instrument(func, symbol, before, ret, *args):
        now = time.perf_counter()
        if before:
            started[symbol] = now
        elif symbol in started:
            current[symbol] += now - started.pop(symbol)
            counts[symbol] += 1
        return int(VMInstrumentReturnKind.NO_OP)

    try:
        for _ in range(runs):
            for k, r in runners.items():
                current.clear()
                counts.clear()
                r.vm.set_instrument(instrument)
                t0 = time.perf_counter()
                r.vm["main"](*inputs[k])
                t1 = time.perf_counter()
                r.vm.set_instrument(None)
                r.vm["main"](*inputs[k])
                walls[k].append((t1 - t0, time.perf_counter() - t1))
                per_run[k].append(dict(current))
                calls_per_run[k].append(dict(counts))
    finally:
        for r in runners.values():
            r.vm.set_instrument(None)
    out = {}
    for k, rs in per_run.items():
        symbols = sorted({s for run in rs for s in run})
        n = {s: int(np.median([c.get(s, 0) for c in calls_per_run[k]])) for s in symbols}
        cost = instrument_cost(walls[k], sum(n.values()))
        raw = {s: float(np.median([run.get(s, 0.0) for run in rs])) for s in symbols}
        out[k] = {s: max(raw[s] - cost * n[s], RESOLUTION_FLOOR * raw[s]) for s in symbols}
    return out


#: a call that took less than the instrument's estimated cost keeps this share of its raw time:
#: it ran, and the passes that look a layer up in place take 0 for "not found"
RESOLUTION_FLOOR = 0.05


def instrument_cost(walls: list[tuple[float, float]], calls: int) -> float:
    """Seconds the instrument adds inside each timed call: half of what it adds to a run of
    `main` per call (one callback ends inside the interval, the other starts outside it).
    `walls`: (run with the instrument, run without) pairs in seconds; the median difference."""
    if calls <= 0 or not walls:
        return 0.0
    extra = float(np.median([w - plain for w, plain in walls]))
    return max(0.0, extra) / (2 * calls)


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
