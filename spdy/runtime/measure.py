"""The two timers, both -> Measurement (all times in SECONDS): TVM's time_evaluator for
built modules (`time_module`), a Python loop for any callable (`time_callable`).

time_evaluator runs the function in C++ (no Python overhead per call), repeats it
``number`` times per sample and returns one mean per sample; we summarise the samples by
median and 10th/90th percentiles because other processes share the CPU and the mean would
follow their spikes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, asdict

import numpy as np


@dataclass(frozen=True)
class Measurement:
    """Latency statistics in seconds over ``n`` samples (each a mean of several calls)."""
    median: float
    p10: float
    p90: float
    n: int

    @staticmethod
    def from_samples(samples) -> "Measurement":
        s = np.asarray(list(samples), dtype="float64")
        if s.size == 0:
            raise ValueError("no samples")
        return Measurement(float(np.median(s)), float(np.percentile(s, 10)),
                           float(np.percentile(s, 90)), int(s.size))

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def median_ms(self) -> float:
        return self.median * 1e3


def time_callable(func, args=(), *, number: int = 0, repeat: int = 7,
                  min_repeat_ms: float = 20.0, warmup: int = 2) -> Measurement:
    """Time a Python callable (PyTorch, onnxruntime, an artifact's `main`) in ``repeat``
    samples, each the mean of one block of calls, after ``warmup`` untimed calls.

    A block is ``number`` calls, or with ``number <= 0`` as many calls as fill
    ``min_repeat_ms``: counting calls until the time has passed keeps every block that long
    even when one call was slowed by a load burst (an estimate from one call would not)."""
    for _ in range(warmup):
        func(*args)
    samples = []
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            func(*args)
            n += 1
            elapsed = time.perf_counter() - t0
            if (number > 0 and n >= number) or (number <= 0 and elapsed >= min_repeat_ms / 1e3):
                break
        samples.append(elapsed / n)
    return Measurement.from_samples(samples)


def time_module(mod, name: str, args, *, dev=None, number: int = 0, repeat: int = 7,
                min_repeat_ms: float = 20.0) -> Measurement:
    """Time ``mod[name](*args)`` with the module's C++ time_evaluator (a built TIR module or
    a Relax VirtualMachine both provide one)."""
    import tvm
    dev = dev or tvm.cpu()
    if number <= 0:
        number, min_ms = 1, min_repeat_ms
    else:
        min_ms = 0
    f = mod.time_evaluator(name, dev, number=number, repeat=repeat, min_repeat_ms=int(min_ms))
    res = f(*args)
    return Measurement.from_samples(res.results)
