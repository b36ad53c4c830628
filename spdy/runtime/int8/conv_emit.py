"""Relax emitter for an int8 Conv2d layer: quantize+pack kernel, then the conv kernel.

emit_int8_conv2d lowers one layer to (dynamic mode: a min/max kernel first, then) the
pack kernel (fp32 NCHW -> uint8 phase planes, conv_pack.py) and one conv kernel with the
requantize/bias/residual/activation epilogue fused (conv.py dense, sparse_conv.py bsrRx4).
The conv kernel's tile shape is tuned through ``ctx.tuner`` (spdy.runtime.tune) under a
signature holding everything its speed depends on; the pack kernel has nothing to tune.
Which kernel runs:
  - dense format, VNNI target, groups == 1         -> conv.py "pix" or "chn" (tuned)
  - sparse format, VNNI target, groups == 1        -> sparse_conv.py (tuned)
  - groups > 1 or no VNNI                          -> conv.py "generic" on the weight as given
    (a sparse weight's zeros are simply multiplied; counted "conv2d.int8_generic")
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spdy.activations import ACTIVATIONS
from spdy.qscheme import QMAX_W, QMIN_W, ActQuant

from ..amx import amx_usable
from ..provenance import source_hash
from .conv import (ConvParams, conv_isa, dense_candidates, dense_conv_source, dense_default, isa_lanes,
                   out_channels_padded, pack_dense_weight)
from .conv_amx import amx_candidates, amx_channels_padded, amx_source, pack_amx_weight
from .conv_blocks import int8_format
from .conv_pack import QConvGeom, pack_source, qparams_source
from .emit import threads_of
from .sparse_conv import (Int8BSR, out_channels_padded_sparse, sparse_candidates, sparse_consts,
                          sparse_conv_source, sparse_default, to_int8_bsr)

SOURCE_HASH = source_hash(*(f"runtime/int8/{f}" for f in ("conv.py", "conv_pack.py", "conv_blocks.py",
                                                           "sparse_conv.py", "conv_emit.py", "conv_amx.py")),
                          "runtime/kernels/tvmscript.py", "runtime/kernels/workers.py")


def _pair(v, what: str) -> tuple[int, int]:
    t = (int(v),) * 2 if np.isscalar(v) else tuple(int(a) for a in v)
    if len(t) == 1:
        t = t * 2
    if len(t) != 2 or min(t) < 1:
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return t


def _padding4(padding) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from an int, (ph, pw) or a 4-tuple."""
    p = (int(padding),) if np.isscalar(padding) else tuple(int(a) for a in padding)
    if len(p) == 1:
        p = p * 4
    elif len(p) == 2:
        p = (p[0], p[1], p[0], p[1])
    if len(p) != 4 or min(p) < 0:
        raise ValueError(f"padding must be an int, (ph, pw) or (top, left, bottom, right) >= 0, got {padding!r}")
    return p


@dataclass
class Int8ConvLayer:
    """Everything needed to build, tune and emit one int8 conv layer's kernels."""
    g: QConvGeom
    w_q: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray | None
    act: ActQuant
    fmt: str                    # "dense" | "bsr16x4" | "bsr4x4" | "bsr1x4"
    activation: str
    has_residual: bool
    isa: str
    lanes: int
    bsr: Int8BSR | None         # the sparse kernel's blocks (None: a dense or generic kernel runs)
    amx: bool = False           # the dense kernel may run on AMX tiles (conv_amx.py)
    threads: int = 1            # worker threads the AMX kernel splits its tasks over

    @property
    def kernel(self) -> str:
        """"sparse", "dense" or "generic": which conv kernel family runs."""
        if self.bsr is not None:
            return "sparse"
        return "generic" if self.isa == "generic" or self.g.groups != 1 else "dense"

    @property
    def format_name(self) -> str:
        """The registry spelling (spdy.formats): "dense-int8", "bsr16x4-int8", ..."""
        return f"{self.fmt}-int8"

    @property
    def level_bp(self) -> int:
        return int(round(self.bsr.block_sparsity * 10000)) if self.bsr is not None else 0

    @property
    def signature(self) -> str:
        return (f"int8_conv2d:{self.g.key()}:{self.kernel}:{self.fmt}:{self.act.mode}:{self.activation}:"
                f"b{int(self.bias is not None)}r{int(self.has_residual)}:{self.isa}x{self.lanes}"
                + (f":amx:t{self.threads}" if self.amx and self.kernel == "dense" else ""))

    def candidates(self) -> list[ConvParams]:
        if self.kernel == "sparse":
            return sparse_candidates(self.g, self.bsr.r, self.lanes)
        if self.amx and self.kernel == "dense":    # tiles first: on AMX CPUs they win where they fit
            return (amx_candidates(self.g) + dense_candidates(self.g, self.isa, self.lanes))[:16]
        return dense_candidates(self.g, "generic" if self.kernel == "generic" else self.isa, self.lanes)

    def default(self) -> ConvParams:
        if self.kernel == "sparse":
            return sparse_default(self.g, self.bsr.r, self.lanes)
        if self.amx and self.kernel == "dense":
            return amx_candidates(self.g)[0]
        return dense_default(self.g, "generic" if self.kernel == "generic" else self.isa, self.lanes)

    def effective(self, p: ConvParams) -> ConvParams:
        """p, or the generic default when the generic kernel must run whatever p asks."""
        if self.kernel == "generic" and p.kind != "generic":
            return dense_default(self.g, "generic", self.lanes)
        return p

    def conv_source(self, p: ConvParams) -> str:
        kw = dict(isa=self.isa, lanes=self.lanes, mode=self.act.mode, bias=self.bias is not None,
                  residual=self.has_residual, act=self.activation)
        if self.kernel == "sparse":
            return sparse_conv_source(self.g, self.bsr, p, **kw)
        if p.kind == "amx":
            return amx_source(self.g, p, self.act.mode, bias=kw["bias"], residual=kw["residual"], act=kw["act"],
                              threads=self.threads)
        return dense_conv_source(self.g, self.effective(p), **kw)

    def opad(self, p: ConvParams) -> int:
        if self.kernel == "sparse":
            return out_channels_padded_sparse(self.bsr)
        if p.kind == "amx":
            return amx_channels_padded(self.g, p)
        return out_channels_padded(self.g, self.effective(p), self.lanes)

    def conv_consts(self, p: ConvParams) -> list[np.ndarray]:
        """Constant arguments of the conv kernel after P [and qp]: weights, ec, es, [bias]."""
        if self.kernel == "sparse":
            consts = sparse_consts(self.bsr, self.g)
        elif p.kind == "amx":
            consts = [pack_amx_weight(self.w_q, self.g, p)]
        else:
            consts = [pack_dense_weight(self.w_q, self.g, self.effective(p), self.lanes)]
        opad = self.opad(p)
        wsum = self.w_q.astype(np.int64).reshape(self.g.o, -1).sum(axis=1)
        ec, es = np.zeros(opad, np.int32), np.zeros(opad, np.float32)
        if self.act.mode == "static":     # folded at compile time: zp * wsum and x_scale * w_scale
            ec[:self.g.o] = int(self.act.zero_point) * wsum
            es[:self.g.o] = np.float32(self.act.scale) * self.w_scale
        else:                             # the kernel reads zp and x_scale from qp at run time
            ec[:self.g.o] = wsum
            es[:self.g.o] = self.w_scale
        consts += [ec, es]
        if self.bias is not None:
            b = np.zeros(opad, np.float32)
            b[:self.g.o] = self.bias
            consts.append(b)
        return consts

    def pack_source(self) -> str:
        return pack_source(self.g, self.act.mode, scale=self.act.scale, zero_point=self.act.zero_point)


def int8_conv_layer(x_shape, w_q, w_scale, bias, *, stride, padding, dilation, groups, act: ActQuant, fmt: str,
                    activation: str, has_residual: bool, target, name: str = "conv",
                    num_threads: int = 1) -> Int8ConvLayer:
    """Validate a layer's arguments (one-line errors naming the fix) and plan its kernels."""
    if not isinstance(act, ActQuant):
        raise TypeError(f"{name}: act must be a spdy.qscheme.ActQuant, got {type(act).__name__}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown activation {activation!r}; known: {ACTIVATIONS}")
    base = int8_format(fmt)
    x_shape = tuple(int(d) for d in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"{name}: int8 conv2d needs an NCHW input, got shape {x_shape}")
    w = np.asarray(w_q)
    if w.ndim != 4:
        raise ValueError(f"{name}: w_q must be [O, C/groups, KH, KW], got shape {w.shape}")
    if not np.issubdtype(w.dtype, np.integer) or w.size and (w.min() < QMIN_W or w.max() > QMAX_W):
        raise ValueError(f"{name}: w_q must hold integers in [{QMIN_W}, {QMAX_W}] "
                         "(quantize with spdy.qscheme.quantize_weight_np)")
    o, cg, kh, kw = w.shape
    groups = int(groups)
    if groups < 1 or x_shape[1] != cg * groups or o % groups:
        raise ValueError(f"{name}: input has {x_shape[1]} channels but w_q {w.shape} with groups={groups} "
                         f"expects {cg * groups}, and groups must divide {o} outputs")
    ws = np.asarray(w_scale, np.float32).reshape(-1)
    if ws.shape != (o,) or not (np.all(np.isfinite(ws)) and np.all(ws > 0)):
        raise ValueError(f"{name}: w_scale must be {o} positive finite float32 values (one per output channel)")
    b = None if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if b is not None and b.shape != (o,):
        raise ValueError(f"{name}: bias must have {o} values, got {b.shape}")
    g = QConvGeom(*x_shape, o, kh, kw, _pair(stride, "stride"), _padding4(padding), _pair(dilation, "dilation"),
                  groups)
    isa = conv_isa(target)
    lanes = isa_lanes(isa, target)
    w = w.astype(np.int8)
    bsr = to_int8_bsr(w, base) if base != "dense" and groups == 1 and isa != "generic" else None
    amx = isa == "vnni512" and groups == 1 and amx_usable(target)
    return Int8ConvLayer(g, w, ws, b, act, base, activation, bool(has_residual), isa, lanes, bsr, amx,
                         max(1, int(num_threads)))


# -- build and tune ----------------------------------------------------------------------------

def parse_kernel(src: str):
    from spdy.runtime.kernels.tvmscript import parse_prim_func
    return parse_prim_func(src)


def timing_args(layer: Int8ConvLayer, p: ConvParams, seed: int = 0) -> list[np.ndarray]:
    """Arguments of the conv kernel on random activations (planes of random bytes)."""
    g = layer.g
    rng = np.random.default_rng(seed)
    args = [rng.integers(-2 ** 31, 2 ** 31 - 1, g.plane_words, dtype=np.int64).astype(np.int32)]
    if layer.act.mode == "dynamic":
        args.append(np.array([0.05, 17.0, 20.0], np.float32))
    args += layer.conv_consts(p)
    out = (g.n, g.o, g.oh, g.ow)
    if layer.has_residual:
        args.append(rng.standard_normal(out).astype(np.float32))
    args.append(np.zeros(out, np.float32))
    return args


def _build_for_timing(layer: Int8ConvLayer, target):
    def fn(d: dict):
        import tvm
        p = ConvParams.from_json(d)
        lib = tvm.tirx.build(parse_kernel(layer.conv_source(p)), target)
        return lib, [tvm.runtime.tensor(a) for a in timing_args(layer, p)]
    return fn


def tune_layer(ctx, layer: Int8ConvLayer) -> tuple[ConvParams, float | None]:
    """(tile parameters, the conv kernel's median seconds if the tuner timed it)."""
    default = layer.default()
    tuner = getattr(ctx, "tuner", None)
    if tuner is None:
        return default, None
    best, secs = tuner.tune(layer.signature, [p.to_json() for p in layer.candidates()],
                            _build_for_timing(layer, ctx.target), default=default.to_json(),
                            source_hash=SOURCE_HASH, format=layer.format_name, level_bp=layer.level_bp)
    return ConvParams.from_json(best), secs


# -- Relax -----------------------------------------------------------------------------------------

def _call(bb, func, symbol: str, args, shape, dtype: str):
    from spdy.runtime.kernels.relax_util import call_kernel
    return call_kernel(bb, func.with_attr("global_symbol", symbol), symbol, args, shape, dtype)


def emit_layer(bb, x, residual, layer: Int8ConvLayer, p: ConvParams, *, name: str, ctx):
    """The layer's kernels as call_tir's; returns the fp32 NCHW output expression."""
    from spdy.runtime.kernels.relax_util import const, reshape, static_shape
    g = layer.g
    pre = []
    if layer.act.mode == "dynamic":
        sym = ctx.unique_symbol(f"{name}_i8qparams")
        flat = reshape(bb, x, (g.n * g.c * g.h * g.w,))
        pre.append(_call(bb, parse_kernel(qparams_source(g.n * g.c * g.h * g.w)), sym, [flat], (3,), "float32"))
    sym = ctx.unique_symbol(f"{name}_i8pack")
    planes = _call(bb, parse_kernel(layer.pack_source()), sym, [x, *pre], (g.plane_words,), "int32")
    args = [planes, *pre, *[const(c, str(c.dtype)) for c in layer.conv_consts(p)]]
    out = (g.n, g.o, g.oh, g.ow)
    if layer.has_residual:
        if static_shape(residual) != out and int(np.prod(static_shape(residual))) == int(np.prod(out)):
            residual = reshape(bb, residual, out)
        elif static_shape(residual) != out:
            raise ValueError(f"{name}: residual has shape {static_shape(residual)}, the conv output is {out}")
        args.append(residual)
    sym = ctx.unique_symbol(f"{name}_i8{layer.kernel}_{layer.fmt}")
    return _call(bb, parse_kernel(layer.conv_source(p)), sym, args, out, "float32")


def emit_int8_conv2d(bb, x, w_q: np.ndarray, w_scale: np.ndarray, bias, residual, *, stride, padding, dilation,
                     groups, act: ActQuant, fmt: str, activation: str, name: str, ctx):
    """y = act((acc - zp*wsum) * (x_scale*w_scale) + bias + residual), fp32 NCHW in and out.

    w_q int8 [O, C/groups, KH, KW] on the int8 grid (sparse formats: its zero blocks are
    skipped), w_scale float32 [O], padding (top, left, bottom, right) or an int / pair.
    """
    from spdy.runtime.kernels.relax_util import static_shape
    layer = int8_conv_layer(static_shape(x), w_q, w_scale, bias, stride=stride, padding=padding,
                            dilation=dilation, groups=groups, act=act, fmt=fmt, activation=activation,
                            has_residual=residual is not None, target=ctx.target, name=name,
                            num_threads=threads_of(ctx))
    p, _ = tune_layer(ctx, layer)
    ctx.count("conv2d.int8_generic" if layer.kernel == "generic" else f"conv2d.{layer.format_name}")
    return emit_layer(bb, x, residual, layer, p, name=name, ctx=ctx)
