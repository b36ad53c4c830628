"""Latency of one layer's kernel under each option (dense, or a sparse format at a level).

SPDY's latency table t[l][o] comes from here. Every option of a layer is compiled as its own
Relax function inside ONE module (one build per layer instead of one per option: a build
costs ~1 s, a ResNet-50 table has 52 x 42 options) and timed with TVM's time evaluator on the
target. Each option is emitted by the same emitters the lowering uses, so the table measures
exactly the kernels the artifact will run, with their epilogues. Results are cached in the
latency database under (op signature, format, level, target, host+threads, source hash, tvm).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spdy.runtime.emit_context import EmitContext
from spdy.runtime.threads import ensure_threads


@dataclass(frozen=True)
class LayerSpec:
    """What a layer's kernel latency depends on, plus its real weights (for realistic masks)."""
    name: str
    kind: str                 # "conv2d" | "linear"
    signature: str
    in_shape: tuple
    out_shape: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    has_bias: bool = False
    has_residual: bool = False
    activation: str = "none"


def kernel_source_hash() -> str:
    """Hash of the kernel and emitter sources: a changed kernel never reuses old timings."""
    root = Path(__file__).parent
    h = hashlib.sha256()
    for p in sorted([*root.glob("kernels/*.py"), *root.glob("sparse/*.py"), Path(__file__)]):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _emit(bb, spec: LayerSpec, x, res, weight, bias, name, ctx):
    from spdy.runtime import kernels
    if spec.kind == "linear":
        return kernels.emit_linear(bb, x, weight, bias, res, activation=spec.activation, name=name, ctx=ctx)
    return kernels.emit_conv2d(bb, x, weight, bias, res, stride=spec.stride, padding=spec.padding,
                               dilation=spec.dilation, groups=spec.groups, activation=spec.activation,
                               name=name, ctx=ctx)


def _build_options(spec: LayerSpec, options: list[tuple[str, float, np.ndarray]], bias, target, threads, tuner):
    """One Relax module with a function `opt{i}` per option; returns (vm, names, inputs)."""
    import tvm
    from tvm import relax
    from spdy.runtime import kernels

    ctx = EmitContext(target=target, num_threads=threads, tuner=tuner)
    bb = relax.BlockBuilder()
    names = []
    for i, (fmt, sparsity, weight) in enumerate(options):
        name = f"{spec.name}__opt{i}"
        if fmt != "dense":
            ctx.sparse[name] = {"format": fmt, "sparsity": float(sparsity)}
        x = relax.Var("x", relax.TensorType(spec.in_shape, "float32"))
        params = [x]
        res = None
        if spec.has_residual:
            res = relax.Var("res", relax.TensorType(spec.out_shape, "float32"))
            params.append(res)
        with bb.function(f"opt{i}", params):
            with bb.dataflow():
                y = _emit(bb, spec, x, res, weight, bias, name, ctx)
                out = bb.emit_output(y)
            bb.emit_func_output(out)
        names.append(f"opt{i}")
    mod = bb.get()
    ex = tvm.compile(mod, target, relax_pipeline=kernels.relax_pipeline(target, ctx))
    dev = tvm.cpu()
    vm = relax.VirtualMachine(ex, dev)
    rng = np.random.default_rng(0)
    inputs = [tvm.runtime.tensor(rng.standard_normal(spec.in_shape).astype("float32"), dev)]
    if spec.has_residual:
        inputs.append(tvm.runtime.tensor(rng.standard_normal(spec.out_shape).astype("float32"), dev))
    return vm, dev, names, inputs


def measure_options(spec: LayerSpec, options: list[tuple[str, float, np.ndarray]], bias: np.ndarray | None,
                    target, *, threads: int, tuner=None, db=None, repeat: int = 5,
                    min_repeat_ms: int = 10) -> tuple[list[float], int]:
    """Median seconds of each option [(format, sparsity, masked weight)]; returns (times, cache hits).

    Options found in `db` are not rebuilt; the others are built together and stored.
    """
    from spdy.runtime.latency_db import LatencyKey
    ensure_threads(threads)
    src = kernel_source_hash()
    keys = [LatencyKey.make(spec.signature + f":a{spec.activation}:r{int(spec.has_residual)}:b{int(spec.has_bias)}",
                            target, threads, src, format=fmt, level_bp=int(round(s * 10000)))
            for fmt, s, _ in options]
    times: list[float | None] = [None] * len(options)
    if db is not None:
        for i, k in enumerate(keys):
            hit = db.get(k)
            if hit is not None:
                times[i] = hit.latency_s
    todo = [i for i, t in enumerate(times) if t is None]
    if todo:
        vm, dev, names, inputs = _build_options(spec, [options[i] for i in todo], bias, target, threads, tuner)
        for j, i in enumerate(todo):
            f = vm.time_evaluator(names[j], dev, number=1, repeat=repeat, min_repeat_ms=int(min_repeat_ms))
            f(*inputs)  # warm-up: first call pays page faults and thread start
            samples = np.array(f(*inputs).results)
            med = float(np.median(samples))
            times[i] = med
            if db is not None:
                db.put(keys[i], {}, med, float(np.percentile(samples, 10)), float(np.percentile(samples, 90)),
                       len(samples))
    return [float(t) for t in times], len(options) - len(todo)
