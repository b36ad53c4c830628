"""Pick GEMM schedule parameters for a spec: the tuner's best, or the defaults without one.

Also builds a standalone GEMM with random operands for the tuner to time, so the search and
the emitted kernel use exactly the same template.
"""
from __future__ import annotations

import numpy as np

from ..provenance import source_hash
from .gemm import GemmParams, GemmSpec, buffer_shapes, candidate_params, default_params, effective_params, make_gemm

# editing the template invalidates its cached timings and tuned parameters
GEMM_SOURCE_HASH = source_hash("runtime/kernels/gemm.py", "runtime/kernels/tvmscript.py")


def build_gemm_for_timing(spec: GemmSpec, params: GemmParams, target):
    """(runtime module with "main", args) for the GEMM on random data: what the tuner times."""
    import tvm
    p = effective_params(spec, params)
    lib = tvm.tirx.build(make_gemm(spec, p, "main"), target)
    rng = np.random.default_rng(0)
    args = [tvm.runtime.tensor(rng.standard_normal(s).astype("float32"))
            for s in buffer_shapes(spec, p).values()]
    return lib, args


def choose_gemm_params(ctx, spec: GemmSpec) -> GemmParams:
    tuner = getattr(ctx, "tuner", None)
    default = effective_params(spec, default_params(spec))
    if tuner is None:
        return default
    target = ctx.target
    best = tuner.best_params(
        signature=spec.signature(),
        candidates=[p.to_json() for p in candidate_params(spec)],
        build_fn=lambda d: build_gemm_for_timing(spec, GemmParams.from_json(d), target),
        default=default.to_json(),
        source_hash=GEMM_SOURCE_HASH,
    )
    return effective_params(spec, GemmParams.from_json(best))
