"""Compile a lowered Relax module for the target into a runnable executable."""
from __future__ import annotations

import time
from dataclasses import dataclass

from spdy.errors import SpdyError
from spdy.runtime.artifact import ArtifactRunner
from spdy.runtime.lower import LoweredModule
from spdy.runtime.threads import ensure_threads
from spdy.version import __version__


class BuildError(SpdyError):
    """TVM could not build the module; names the function that failed."""


@dataclass
class Built:
    executable: object
    runner: ArtifactRunner
    manifest: dict
    build_s: float
    num_primfuncs: int


def manifest_for(lowered: LoweredModule, target, num_threads: int) -> dict:
    return {
        "spdy": __version__,
        "target": target.to_dict(),
        "target_canonical": target.canonical(),
        "num_threads": int(num_threads),
        "inputs": [{"name": n, "shape": list(s), "dtype": d} for n, s, d in
                   zip(lowered.input_names, lowered.input_shapes, lowered.input_dtypes)],
        "outputs": [{"shape": list(s), "dtype": d} for s, d in zip(lowered.output_shapes, lowered.output_dtypes)],
        "single_output": lowered.single_output,
    }


def build_executable(lowered: LoweredModule, target, emit_ctx, *, num_threads: int) -> Built:
    import tvm
    from spdy.runtime import kernels

    ensure_threads(default=num_threads)
    tvm_target = target.to_tvm()
    t0 = time.perf_counter()
    try:
        ex = tvm.compile(lowered.mod, tvm_target, relax_pipeline=kernels.relax_pipeline(tvm_target, emit_ctx))
    except SpdyError:
        raise
    except Exception as exc:  # noqa: BLE001 - TVM errors are long C++ traces; keep the first line
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise BuildError(f"TVM failed to build the model for {target}: {first[:300]}") from exc
    build_s = time.perf_counter() - t0
    n_funcs = sum(1 for _, f in lowered.mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc))
    manifest = manifest_for(lowered, target, num_threads)
    return Built(ex, ArtifactRunner(ex, manifest), manifest, build_s, n_funcs)
