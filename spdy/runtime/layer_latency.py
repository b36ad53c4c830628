"""Latency of one layer's kernel under each option (dense, or a sparse format at a level).

SPDY's latency table t[l][o] comes from here, timed with TVM's time evaluator on the target,
and always of the kernels the artifact will run (same emitters, same tuned parameters, same
epilogues):
- a sparse option's time is the tuner's: tuning builds and times every candidate kernel on
  the layer's own masked weight, so the fastest candidate's median is the option's latency.
  No second build (a Relax build of 42 functions per layer cost ~6 s, and the tuner's
  builds were already paid for: a ResNet-50 layer took ~58 s before, ~35 s now);
- the dense option is built as a one-function Relax module (the dense emitter may chain
  several kernels, e.g. im2col and GEMM) and timed as a whole.
Results are cached in the latency database under (op signature, format, level, target,
host+threads, source hash, tvm).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spdy.runtime.device import LOCAL
from spdy.runtime.emit_context import EmitContext
from spdy.runtime.provenance import source_hash
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
    act_mode: str = "static"  # how an int8 option quantizes the layer's input (spdy/qscheme.py)


#: kernels a single conv/linear layer never uses (softmax and layer norm): editing them must not
#: re-time every cached layer
NOT_LAYER_KERNELS = ("runtime/kernels/rowwise.py",)


def kernel_source_hash() -> str:
    """Hash of the kernel and emitter sources: a changed kernel never reuses old timings."""
    return source_hash("runtime/kernels/*.py", "runtime/sparse/*.py", "runtime/layer_latency.py",
                       exclude=NOT_LAYER_KERNELS)


def _emit(bb, spec: LayerSpec, x, res, weight, bias, name, ctx):
    from spdy.runtime import kernels
    if spec.kind == "linear":
        return kernels.emit_linear(bb, x, weight, bias, res, activation=spec.activation, name=name, ctx=ctx)
    return kernels.emit_conv2d(bb, x, weight, bias, res, stride=spec.stride, padding=spec.padding,
                               dilation=spec.dilation, groups=spec.groups, activation=spec.activation,
                               name=name, ctx=ctx)


def _build_dense(spec: LayerSpec, weight: np.ndarray, bias, target, threads, tuner):
    """A Relax executable whose `main` is the layer's dense kernel(s), and numpy inputs for it."""
    import tvm
    from tvm import relax
    from spdy.runtime import kernels

    ctx = EmitContext(target=target, num_threads=threads, tuner=tuner)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(spec.in_shape, "float32"))
    params = [x]
    res = None
    if spec.has_residual:
        res = relax.Var("res", relax.TensorType(spec.out_shape, "float32"))
        params.append(res)
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(_emit(bb, spec, x, res, weight, bias, f"{spec.name}__dense", ctx))
        bb.emit_func_output(out)
    ex = tvm.compile(bb.get(), target, relax_pipeline=kernels.relax_pipeline(target, ctx))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(spec.in_shape).astype("float32")]
    if spec.has_residual:
        arrays.append(rng.standard_normal(spec.out_shape).astype("float32"))
    return ex, arrays


def _time_dense(spec, weight, bias, target, threads, tuner, repeat, min_repeat_ms) -> np.ndarray:
    """Samples (seconds) of the dense option, timed on the tuner's measuring device."""
    ex, arrays = _build_dense(spec, weight, bias, target, threads, tuner)
    return _device(tuner).time_vm_samples(ex, arrays, repeat=repeat, min_repeat_ms=min_repeat_ms)


def _device(tuner):
    """Where this layer's options are timed: the tuner's device (spdy.runtime.device), else this CPU."""
    return getattr(tuner, "device", None) or LOCAL


def _time_sparse(spec, fmt, sparsity, weight, target, threads, tuner, repeat, min_repeat_ms,
                 retime=False) -> float:
    from spdy.runtime.sparse.emit import time_sparse_layer
    ctx = EmitContext(target=target, num_threads=threads, tuner=tuner)
    return time_sparse_layer(spec.kind, spec.in_shape, weight, has_bias=spec.has_bias,
                             has_residual=spec.has_residual, activation=spec.activation, ctx=ctx,
                             spec={"format": fmt, "sparsity": float(sparsity)}, stride=spec.stride,
                             padding=spec.padding, dilation=spec.dilation, repeat=repeat,
                             min_repeat_ms=min_repeat_ms, retime=retime)


def _time_int8(spec, fmt, weight, bias, target, threads, tuner, repeat, min_repeat_ms) -> float:
    """Seconds of everything an int8 option emits for the layer (input quantization + kernel).

    The values of the weight do not change the kernel's speed, its zero blocks do: the masked
    weight is rounded to int8 with absmax scales here."""
    from spdy import formats
    from spdy.qscheme import ActQuant, QMAX_W
    f = formats.get(fmt)
    kernel_fmt = f.name[: -len("-int8")] if f.sparse else "dense"
    w = np.asarray(weight, np.float32)
    amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    w_scale = np.where(amax > 0, amax / QMAX_W, 1.0).astype(np.float32)
    w_q = np.rint(w / w_scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.int8)
    act = ActQuant(spec.act_mode, 0.05, 128) if spec.act_mode == "static" else ActQuant("dynamic")
    ctx = EmitContext(target=target, num_threads=threads, tuner=tuner)
    kw = dict(has_bias=spec.has_bias, has_residual=spec.has_residual, activation=spec.activation, act=act,
              fmt=kernel_fmt, ctx=ctx, repeat=repeat, min_repeat_ms=min_repeat_ms)
    if spec.kind == "linear":
        from spdy.runtime.int8.timing import time_int8_linear
        return time_int8_linear(spec.in_shape, w_q, w_scale, **kw)
    from spdy.runtime.int8.conv_timing import time_int8_conv2d
    return time_int8_conv2d(spec.in_shape, w_q, w_scale, stride=spec.stride, padding=spec.padding,
                            dilation=spec.dilation, groups=spec.groups, **kw)


def option_key_suffix(spec: LayerSpec, fmt: str) -> str:
    """What an option's latency depends on beyond the op signature: an int8 option's input
    quantization mode and the int8 kernels' source (kernel_source_hash covers only the fp32
    kernels, so an edited int8 pack or conv kept its old timing in the table). fp32 keys stay
    as they were: an int8 edit does not re-time them."""
    from spdy import formats
    return (f":q{spec.act_mode}:{source_hash('runtime/int8/*.py', 'runtime/kernels/workers.py')}"
            if formats.get(fmt).int8 else "")


def measure_options(spec: LayerSpec, options: list[tuple[str, float, np.ndarray]], bias: np.ndarray | None,
                    target, *, threads: int, tuner=None, db=None, repeat: int = 5,
                    min_repeat_ms: int = 10, retime: bool = False) -> tuple[list[float], int]:
    """Median seconds of each option [(format, sparsity, masked weight)]; returns (times, cache hits).

    Options found in `db` are not measured again; the others are measured and stored as each
    completes (an interrupted table resumes where it stopped). `retime` measures every option
    again and keeps the lower of the cached and the new time (load only slows kernels down).
    Grouped and depthwise convs have no sparse kernel (the lowering keeps them dense): only
    their dense option is valid.
    """
    from spdy import formats
    from spdy.runtime.latency_db import LatencyKey
    ensure_threads(default=threads)
    src = kernel_source_hash()
    # rows are keyed by the measuring device's identity (a remote one: its fingerprint and threads)
    ident = _device(tuner).identity(threads)
    host, key_threads = ident.host, ident.threads
    keys = [LatencyKey.make(spec.signature + f":a{spec.activation}:r{int(spec.has_residual)}:b{int(spec.has_bias)}"
                            + option_key_suffix(spec, fmt),
                            target, key_threads, src, format=fmt, level_bp=int(round(s * 10000)), host=host)
            for fmt, s, _ in options]
    times: list[float | None] = [None] * len(options)
    cached: list[float | None] = [None] * len(options)
    if db is not None:
        for i, k in enumerate(keys):
            hit = db.get(k)
            if hit is not None:
                cached[i] = hit.latency_s
                times[i] = None if retime else hit.latency_s
    hits = sum(t is not None for t in times)
    for i, (fmt, sparsity, weight) in enumerate(options):
        if times[i] is not None:
            continue
        if fmt == "dense":
            samples = _time_dense(spec, weight, bias, target, threads, tuner, repeat, min_repeat_ms)
        elif formats.get(fmt).int8 and (not formats.get(fmt).sparse or spec.groups == 1):
            samples = np.array([_time_int8(spec, fmt, weight, bias, target, threads, tuner, repeat, min_repeat_ms)])
        elif spec.kind == "conv2d" and spec.groups != 1:
            raise ValueError(f"{spec.name}: grouped/depthwise convs have no {fmt} kernel; keep them dense")
        else:
            samples = np.array([_time_sparse(spec, fmt, sparsity, weight, target, threads, tuner, repeat,
                                             min_repeat_ms, retime)])
        times[i] = float(np.median(samples))
        if cached[i] is not None and cached[i] <= times[i]:
            times[i] = cached[i]
            continue
        if db is not None:
            db.put(keys[i], {}, times[i], float(np.percentile(samples, 10)), float(np.percentile(samples, 90)),
                   len(samples))
    return [float(t) for t in times], hits
