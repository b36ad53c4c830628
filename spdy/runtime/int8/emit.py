"""Relax emitter for int8 Linear layers (dense and block-sparse), tuned through ctx.tuner.

One ``call_tir`` per layer: the kernel quantizes x itself (static or dynamic, quantize.py)
and fuses ``act((acc - zp*wsum) * (x_scale*w_scale) + bias + residual)`` into its stores, so
the layer reads float32 and writes float32 like every other spdy kernel. Weights and all
per-output constants (wsum, scales, bias; sparse: blocks and balanced work lists) are packed
at compile time. The tuning key holds everything the kernel's speed depends on: shapes,
isa, format, activation quantization mode and the epilogue (and, through ``level_bp``, the
block sparsity); the source hash changes with any kernel source.
Output requantization to uint8 (chains of int8 layers) is not implemented: every layer
dequantizes to float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spdy.activations import ACTIVATIONS
from spdy.qscheme import ActQuant

from ..amx import amx_usable
from ..provenance import source_hash
from .features import int8_support
from .linear import DenseParams, DenseSpec
from .snippets import Epilogue

SOURCE_HASH = source_hash(*(f"runtime/int8/{f}" for f in ("features.py", "snippets.py", "quantize.py", "linear.py",
                                                           "sparse_linear.py", "emit.py", "linear_amx.py")),
                          "runtime/kernels/tvmscript.py", "runtime/sparse/balance.py", "runtime/kernels/workers.py")

LINEAR_FORMATS = ("dense", "bsr16x4", "bsr4x4", "bsr1x4")


def base_format(fmt: str) -> str:
    """"dense" | "bsr16x4" | "bsr4x4" | "bsr1x4" from either spelling (also "dense-int8", "bsr4x4-int8")."""
    base = fmt[:-5] if isinstance(fmt, str) and fmt.endswith("-int8") else fmt
    base = "dense" if base == "int8" else base
    if base not in LINEAR_FORMATS:
        raise ValueError(f"unknown int8 linear format {fmt!r}; use one of {LINEAR_FORMATS} "
                         "(optionally with the '-int8' suffix)")
    return base


@dataclass
class Int8Kernel:
    """A parsed kernel and its constant arguments: call it as (x2d, *consts, [residual2d]) -> y2d."""
    func: object
    consts: list[np.ndarray]
    out_shape: tuple[int, int]
    out_dtype: str


@dataclass
class Int8LinearLayer:
    """Everything needed to build, tune, time and emit one int8 Linear layer."""
    spec: object                 # DenseSpec | SparseSpec
    fmt: str                     # base format
    w_q: np.ndarray
    w_scale: np.ndarray
    bias: np.ndarray | None
    blocks: object = None        # sparse_linear.Blocks for the sparse formats
    num_threads: int = 1

    @property
    def format_name(self) -> str:
        """The registry spelling (spdy.formats): "dense-int8", "bsr16x4-int8", ..."""
        return f"{self.fmt}-int8"

    @property
    def level_bp(self) -> int:
        return int(round(self.blocks.sparsity * 10000)) if self.blocks is not None else 0

    @property
    def signature(self) -> str:
        return self.spec.signature() + f":t{self.num_threads}"

    @property
    def family(self) -> tuple[str, str]:
        """(prefix, suffix) of the signatures of this kernel with any epilogue: format, M, N, K,
        ISA and threads (the tuner seeds a search with a family member's schedule)."""
        return ":".join(self.spec.signature().split(":")[:5]) + ":", f":t{self.num_threads}"

    def _params(self, d: dict):
        from .sparse_linear import SparseParams
        return DenseParams(**d) if self.fmt == "dense" else SparseParams(**d)

    def candidates(self) -> list:
        if self.fmt == "dense":
            from .linear import candidate_params
            from .linear_amx import amx_candidates
            if not self.spec.amx:
                return candidate_params(self.spec)
            # AMX tiles beside the VNNI ones: they win wherever the rows fill them
            first = self.default()
            return [first] + [p for p in amx_candidates(self.spec) + candidate_params(self.spec) if p != first][:15]
        from .sparse_linear import candidates
        return candidates(self.spec, self.num_threads)

    def default(self):
        if self.fmt == "dense":
            from .linear import default_params
            from .linear_amx import amx_candidates
            if self.spec.amx and self.spec.M >= 16:   # fewer rows leave most of a tile empty
                return amx_candidates(self.spec)[0]
            return default_params(self.spec)
        from .sparse_linear import default_params
        return default_params(self.spec, self.num_threads)

    def kernel(self, params, symbol: str = "main") -> Int8Kernel:
        s = self.spec
        if self.fmt == "dense":
            from .linear import dense_consts, make_dense
            consts = dense_consts(s, params, self.w_q, self.w_scale, self.bias)
            if params.amx:
                from spdy.runtime.kernels.tvmscript import parse_prim_func
                from .linear_amx import amx_dense_source
                func = parse_prim_func(amx_dense_source(s, params, symbol, self.num_threads))
            else:
                func = make_dense(s, params, symbol, self.num_threads)
        else:
            from .sparse_linear import make_sparse, sparse_consts
            consts = sparse_consts(s, self.blocks, params, self.w_q, self.w_scale, self.bias)
            func = make_sparse(s, self.blocks, params, len(consts[3]), symbol)
        return Int8Kernel(func, consts, (s.M, s.N), s.epi.out_dtype)

    def timing_args(self, k: Int8Kernel, seed: int = 0) -> list[np.ndarray]:
        """Random activation (and residual) around the kernel's real constants."""
        rng = np.random.default_rng(seed)
        s = self.spec
        out = [rng.standard_normal((s.M, s.K)).astype(np.float32), *k.consts]
        if s.epi.residual:
            out.append(rng.standard_normal((s.M, s.N)).astype(np.float32))
        return out + [np.zeros(k.out_shape, k.out_dtype)]


def int8_linear_layer(x_shape, w_q, w_scale, bias, *, has_residual: bool, activation: str, act: ActQuant,
                      fmt: str, target, num_threads: int = 1, name: str = "linear", raw_int32: bool = False):
    """Validate the inputs and plan the layer (raw_int32: store the accumulator; tests)."""
    sup = int8_support(target)
    if sup.isa is None:
        raise ValueError(f"{name}: no int8 kernels for this target ({sup.reason}); keep the layer fp32")
    if not isinstance(act, ActQuant):
        raise ValueError(f"{name}: act must be a spdy.qscheme.ActQuant, got {type(act).__name__}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown activation {activation!r}; known: {ACTIVATIONS}")
    base = base_format(fmt)
    w_q = np.asarray(w_q)
    if w_q.dtype != np.int8 or w_q.ndim != 2:
        raise ValueError(f"{name}: w_q must be an int8 matrix [N, K], got {w_q.dtype} {w_q.shape}; "
                         "quantize with spdy.qscheme.quantize_weight_np")
    n, k = w_q.shape
    x_shape = tuple(int(d) for d in x_shape)
    if x_shape[-1] != k:
        raise ValueError(f"{name}: x {x_shape} has {x_shape[-1]} features, the weight expects {k}")
    w_scale = np.asarray(w_scale, np.float32).reshape(-1)
    if w_scale.shape[0] != n or not np.all(np.isfinite(w_scale) & (w_scale > 0)):
        raise ValueError(f"{name}: w_scale must hold {n} positive finite float32 scales, got shape {w_scale.shape}")
    if bias is not None:
        bias = np.asarray(bias, np.float32).reshape(-1)
        if bias.shape[0] != n:
            raise ValueError(f"{name}: bias has {bias.shape[0]} entries for {n} outputs")
    m = int(np.prod(x_shape[:-1], dtype=np.int64)) if len(x_shape) > 1 else 1
    epi = Epilogue("int32") if raw_int32 else Epilogue(act.mode, bias is not None, has_residual, activation)
    if base == "dense":
        spec = DenseSpec(m, n, k, sup.isa, act, epi, amx=sup.isa == "vnni512" and amx_usable(target))
        return Int8LinearLayer(spec, base, w_q, w_scale, bias, None, max(1, int(num_threads)))
    from .sparse_linear import SparseSpec, bsr_blocks
    spec = SparseSpec(m, n, k, sup.isa, base, act, epi)
    return Int8LinearLayer(spec, base, w_q, w_scale, bias, bsr_blocks(w_q, base), max(1, int(num_threads)))


def threads_of(ctx) -> int:
    tuner = getattr(ctx, "tuner", None)
    return int(getattr(tuner, "num_threads", None) or getattr(ctx, "num_threads", 1) or 1)


def build_for_timing(layer: Int8LinearLayer, target):
    """The tuner's build_fn: params dict -> (runtime module exposing "main", args)."""
    def fn(d: dict):
        import tvm
        k = layer.kernel(layer._params(d), "main")
        return tvm.tirx.build(k.func, target), [tvm.runtime.tensor(a) for a in layer.timing_args(k)]
    return fn


def tune_layer(ctx, layer: Int8LinearLayer):
    """(best params, the kernel's median seconds if the tuner timed it); defaults without a tuner."""
    default = layer.default()
    tuner = getattr(ctx, "tuner", None)
    if tuner is None:
        return default, None
    best, secs = tuner.tune(layer.signature, [p.to_json() for p in layer.candidates()],
                            build_for_timing(layer, ctx.target), default=default.to_json(),
                            source_hash=SOURCE_HASH, format=layer.format_name, level_bp=layer.level_bp,
                            family=layer.family)
    return layer._params(best), secs


def emit_int8_linear(bb, x, w_q: np.ndarray, w_scale: np.ndarray, bias, residual, *, act: ActQuant, fmt: str,
                     activation: str, name: str, ctx):
    """y = act((acc - zp*wsum) * (x_scale*w_scale) + bias + residual) over the last axis of x.

    x float32 [..., K]; w_q int8 [N, K] on the int8 grid (sparse formats: its all-zero Rx4
    blocks are skipped); w_scale float32 [N]; returns float32 x.shape[:-1] + (N,)."""
    from spdy.runtime.kernels.relax_util import call_kernel, const, reshape, static_shape
    x_shape = static_shape(x)
    layer = int8_linear_layer(x_shape, w_q, w_scale, bias, has_residual=residual is not None,
                              activation=activation, act=act, fmt=fmt, target=ctx.target,
                              num_threads=threads_of(ctx), name=name)
    params, _ = tune_layer(ctx, layer)
    s = layer.spec
    k = layer.kernel(params, ctx.unique_symbol(f"{name}_i8{layer.fmt}"))
    symbol = str(k.func.attrs["global_symbol"])
    args = [reshape(bb, x, (s.M, s.K)), *[const(c, c.dtype) for c in k.consts]]
    if residual is not None:
        if int(np.prod(static_shape(residual))) != s.M * s.N:
            raise ValueError(f"{name}: residual has shape {static_shape(residual)}, the output is "
                             f"{tuple(x_shape[:-1]) + (s.N,)}")
        args.append(reshape(bb, residual, (s.M, s.N)))
    y = call_kernel(bb, k.func, symbol, args, k.out_shape, k.out_dtype)
    ctx.count(f"linear.{layer.format_name}")
    return reshape(bb, y, tuple(x_shape[:-1]) + (s.N,))
