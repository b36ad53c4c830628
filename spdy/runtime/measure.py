"""Timing with TVM's time_evaluator -> Measurement (all times in SECONDS).

time_evaluator runs the function in C++ (no Python overhead per call), repeats it
``number`` times per sample and returns one mean per sample; we summarise the samples by
median and 10th/90th percentiles because other processes share the CPU and the mean would
follow their spikes.
"""
from __future__ import annotations

import os
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


def ensure_threads(num_threads: int | None = None) -> int:
    """Set TVM_NUM_THREADS (default: all cores) before TVM's thread pool starts; return it.

    TVM reads the variable once, when its runtime first launches threads; an already
    running pool keeps its size, so call this early (the tuner and benchmarks do).
    """
    if num_threads is None:
        num_threads = int(os.environ.get("TVM_NUM_THREADS", 0)) or (os.cpu_count() or 1)
    os.environ["TVM_NUM_THREADS"] = str(num_threads)
    return num_threads


def time_callable(func, args=(), *, number: int = 0, repeat: int = 7,
                  min_repeat_ms: float = 20.0, warmup: int = 2) -> Measurement:
    """Time any Python callable (PyTorch, onnxruntime baselines) the same way."""
    import time
    for _ in range(warmup):
        func(*args)
    if number <= 0:
        t0 = time.perf_counter()
        func(*args)
        one = max(time.perf_counter() - t0, 1e-7)
        number = max(1, int(min_repeat_ms / 1e3 / one))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            func(*args)
        samples.append((time.perf_counter() - t0) / number)
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
