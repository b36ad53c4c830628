"""Relax emitters for layers a sparsity profile marks block-sparse.

Called by `spdy.runtime.kernels.emit_conv2d/emit_linear` (same signatures plus `spec`) when
the layer is in `ctx.sparse`. The weight arrives already masked; its nonzero blocks become
BSR constants of a `call_tir` to a kernel from `templates.py`, tuned per (op signature,
format, sparsity level in basis points) through `ctx.tuner` when there is one.

spec keys: "format" (bsr16x1 | bsr4x1 | bsr1x1), "sparsity" (the profile's level; used for
the tuning key), optional "magnitude_mask": True to prune a dense weight here by block L2
norm to that sparsity (default False: the weight's own zeros define the blocks, since the
pruning passes already applied the mask).
Grouped/depthwise convs (groups > 1) are not block-sparse kernels: they fall back to the
dense kernel with the masked weight (counted as "conv2d.sparse_fallback").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..provenance import source_hash
from .bsr import BSR, block_shape, magnitude_mask, to_bsr
from .kernels import SparseKernel, conv_kernel, linear_kernel
from .templates import ConvGeom, Params, candidates, default_params

SOURCE_HASH = source_hash(*(f"runtime/sparse/{f}" for f in
                            ("templates.py", "direct_conv.py", "rowvec.py", "kernels.py", "balance.py")))


def _shape(x) -> tuple[int, ...]:
    from spdy.runtime.kernels.relax_util import static_shape
    return static_shape(x)


def _bsr_of(weight: np.ndarray, spec: dict) -> BSR:
    fmt = spec.get("format")
    block_shape(fmt)  # validates the name
    w = np.asarray(weight, np.float32)
    if spec.get("magnitude_mask"):
        w = w * magnitude_mask(w, fmt, float(spec.get("sparsity", 0.0)))
    return to_bsr(w.reshape(w.shape[0], -1), fmt)


def _threads(ctx) -> int:
    tuner = getattr(ctx, "tuner", None)
    return int(getattr(tuner, "num_threads", None) or getattr(ctx, "num_threads", 1) or 1)


def _timing_build(build, target, x_shape, extra_shapes):
    """build_fn for the Tuner: params dict -> (module exposing "main", args on random data).

    The BSR constants are the layer's own (time depends on where the nonzeros fall)."""
    def fn(d: dict):
        import tvm
        k: SparseKernel = build(Params(**d), "main")
        rng = np.random.default_rng(0)
        args = [rng.standard_normal(x_shape).astype("float32"), *k.consts,
                *[rng.standard_normal(s).astype("float32") for s in extra_shapes],
                np.zeros(k.out_shape, np.float32)]
        return tvm.tirx.build(k.func, target), [tvm.runtime.tensor(a) for a in args]
    return fn


def _tune(ctx, setup: "_Setup", spec: dict) -> tuple[Params, float | None]:
    """(best Params, the kernel's median seconds if the tuner timed it) for this layer."""
    nt = _threads(ctx)
    default = default_params(setup.br, setup.q, nt, setup.kind)
    tuner = getattr(ctx, "tuner", None)
    if tuner is None:
        return default, None
    best, secs = tuner.tune(
        setup.signature, [vars(p) for p in candidates(setup.br, setup.q, nt, setup.kind)],
        _timing_build(setup.build, ctx.target, setup.x_shape, setup.extra_shapes),
        default=vars(default), source_hash=SOURCE_HASH,
        format=spec["format"], level_bp=int(round(float(spec.get("sparsity", 0.0)) * 10000)))
    return Params(**best), secs


@dataclass(frozen=True)
class _Setup:
    """Everything needed to build, tune and time one sparse layer's kernel."""
    build: Callable           # (Params, symbol) -> SparseKernel
    signature: str            # the tuning key
    br: int                   # block rows
    q: int                    # columns of the tile loop (M for Linear, output pixels for Conv2d)
    x_shape: tuple
    extra_shapes: list        # bias / residual shapes, in argument order
    kind: str                 # "linear" | "conv"


def _call(bb, k: SparseKernel, symbol: str, x, bias, residual):
    from tvm import relax
    from spdy.runtime.kernels.relax_util import call_kernel
    args = [x] + [relax.const(c) for c in k.consts]
    if bias is not None:
        args.append(relax.const(np.asarray(bias, np.float32).reshape(-1)))
    if residual is not None:
        args.append(residual)
    return call_kernel(bb, k.func, symbol, args, k.out_shape)


def _pairs(v, n=2):
    return (int(v),) * n if np.isscalar(v) else tuple(int(a) for a in v)


def _padding4(padding) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from an int, (ph, pw) or a 4-tuple (the dense emitters' order)."""
    p = _pairs(padding)
    if len(p) == 1:
        p = p * 4
    if len(p) == 2:
        p = (p[0], p[1], p[0], p[1])
    if len(p) != 4:
        raise ValueError(f"padding {padding!r}: expected 1, 2 or 4 values")
    return p


def _linear_setup(x_shape, weight, *, has_bias, has_residual, activation, spec) -> _Setup:
    bsr = _bsr_of(weight, spec)
    m = int(np.prod(x_shape[:-1], dtype=np.int64))
    y_shape = (*x_shape[:-1], bsr.shape[0])

    def build(p: Params, symbol: str) -> SparseKernel:
        return linear_kernel(bsr, x_shape, p, bias=has_bias, residual=has_residual, act=activation, symbol=symbol)

    extra = ([(bsr.shape[0],)] if has_bias else []) + ([y_shape] if has_residual else [])
    sig = (f"sparse_linear:x{'x'.join(map(str, x_shape))}:n{bsr.shape[0]}:{activation}:"
           f"b{int(has_bias)}r{int(has_residual)}")
    return _Setup(build, sig, bsr.block[0], m, tuple(x_shape), extra, "linear")


def emit_sparse_linear(bb, x, weight, bias, residual, *, activation, name, ctx, spec: dict):
    """y = act(x @ W^T + bias + residual), W [N, K] as BSR constants; x is [..., K]."""
    setup = _linear_setup(_shape(x), weight, has_bias=bias is not None, has_residual=residual is not None,
                          activation=activation, spec=spec)
    p, _ = _tune(ctx, setup, spec)
    symbol = ctx.unique_symbol(f"{name}_{spec['format']}")
    ctx.count(f"linear.{spec['format']}")
    return _call(bb, setup.build(p, symbol), symbol, x, bias, residual)


def emit_sparse_conv2d(bb, x, weight: np.ndarray, bias, residual, *, stride, padding, dilation,
                       groups, activation, name, ctx, spec: dict):
    """y = act(conv2d(x, W) + bias + residual), NCHW; groups == 1 sparse, else dense fallback."""
    weight = np.asarray(weight, np.float32)
    if groups != 1:
        from spdy.runtime.kernels.conv import emit_dense_conv2d
        ctx.count("conv2d.sparse_fallback")
        w = weight * magnitude_mask(weight, spec["format"], float(spec.get("sparsity", 0.0))) \
            if spec.get("magnitude_mask") else weight
        return emit_dense_conv2d(bb, x, w, bias, residual, stride=tuple(_pairs(stride)),
                                 padding=_padding4(padding), dilation=tuple(_pairs(dilation)),
                                 groups=groups, activation=activation, name=name, ctx=ctx)
    setup = _conv_setup(_shape(x), weight, has_bias=bias is not None, has_residual=residual is not None,
                        activation=activation, stride=stride, padding=padding, dilation=dilation, spec=spec,
                        name=name)
    p, _ = _tune(ctx, setup, spec)
    symbol = ctx.unique_symbol(f"{name}_{spec['format']}")
    ctx.count(f"conv2d.{spec['format']}")
    return _call(bb, setup.build(p, symbol), symbol, x, bias, residual)


def _conv_setup(x_shape, weight, *, has_bias, has_residual, activation, stride, padding, dilation, spec,
                name="conv") -> _Setup:
    n, c, h, w_ = x_shape
    weight = np.asarray(weight, np.float32)
    o, cw, kh, kw = weight.shape
    if cw != c:
        raise ValueError(f"{name}: input has {c} channels, weight expects {cw}")
    g = ConvGeom(n, c, h, w_, o, kh, kw, _pairs(stride), _padding4(padding), _pairs(dilation))
    bsr = _bsr_of(weight, spec)

    def build(p: Params, symbol: str) -> SparseKernel:
        return conv_kernel(bsr, g, p, bias=has_bias, residual=has_residual, act=activation, symbol=symbol)

    y_shape = (n, o, g.oh, g.ow)
    extra = ([(o,)] if has_bias else []) + ([y_shape] if has_residual else [])
    sig = (f"sparse_conv2d:x{n}x{c}x{h}x{w_}:o{o}:k{kh}x{kw}:s{g.stride}:p{g.padding}:d{g.dilation}:"
           f"{activation}:b{int(has_bias)}r{int(has_residual)}").replace(" ", "")
    return _Setup(build, sig, bsr.block[0], g.oh * g.ow, tuple(x_shape), extra, "conv")


def time_sparse_layer(kind: str, x_shape, weight: np.ndarray, *, has_bias: bool, has_residual: bool,
                      activation: str, ctx, spec: dict, stride=1, padding=0, dilation=1,
                      repeat: int = 5, min_repeat_ms: float = 10.0, retime: bool = False) -> float:
    """Median seconds of the kernel the lowering would emit for this layer and spec.

    The latency table's entry for a sparse option: the tuner times every candidate on the
    layer's own (masked) weight anyway, so the fastest candidate's time *is* the kernel's
    latency and no separate build is needed. Without a tuner (or with untuned defaults) the
    default parameters are built and timed here; so are the tuned ones when `retime` asks for
    a second opinion on a suspect timing.
    """
    if kind == "linear":
        setup = _linear_setup(tuple(x_shape), weight, has_bias=has_bias, has_residual=has_residual,
                              activation=activation, spec=spec)
    else:
        setup = _conv_setup(tuple(x_shape), weight, has_bias=has_bias, has_residual=has_residual,
                            activation=activation, stride=stride, padding=padding, dilation=dilation, spec=spec)
    p, secs = _tune(ctx, setup, spec)
    if secs is not None and not retime:
        return float(secs)
    from spdy.runtime.tune import tune_kernel
    res = tune_kernel(setup.signature, [vars(p)], _timing_build(setup.build, ctx.target, setup.x_shape,
                                                                 setup.extra_shapes),
                      repeat=repeat, min_repeat_ms=min_repeat_ms, device=getattr(ctx.tuner, "device", None))
    return float(res.measurement.median)
