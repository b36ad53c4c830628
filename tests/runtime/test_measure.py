"""Measurement summaries and the time_evaluator wrapper (seconds)."""
from __future__ import annotations

import numpy as np

from spdy.runtime.measure import Measurement, time_callable, time_module


def test_from_samples_percentiles():
    m = Measurement.from_samples([3.0, 1.0, 2.0, 4.0, 5.0])
    assert m.median == 3.0 and m.n == 5 and m.p10 <= m.median <= m.p90
    assert Measurement.from_samples([2.0]).to_json() == {"median": 2.0, "p10": 2.0, "p90": 2.0, "n": 1}


def test_time_module_on_a_built_kernel():
    import tvm
    from spdy.runtime.kernels.gemm import GemmSpec, GemmParams
    from spdy.runtime.kernels.select import build_gemm_for_timing
    from ._dense_util import target
    lib, args = build_gemm_for_timing(GemmSpec(M=8, N=32, K=16), GemmParams(), target())
    m = time_module(lib, "main", args, repeat=3, min_repeat_ms=1)
    assert m.n == 3 and 0 < m.p10 <= m.median <= m.p90 < 0.1


def test_time_callable():
    m = time_callable(lambda: np.zeros(10).sum(), repeat=3, min_repeat_ms=1)
    assert m.n == 3 and m.median > 0
