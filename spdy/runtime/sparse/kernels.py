"""Build a block-sparse kernel: PrimFunc plus the constant arrays it takes, for one layer.

Why here: the emitters (Relax constants), the timing code (random inputs) and the tests
all need the same (PrimFunc, constants) pair; this is the one place that turns a BSR weight,
shapes and template parameters into it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .balance import work_list
from .bsr import BSR
from .direct_conv import direct_conv_source, plane_dims, tap_offsets
from .rowvec import rowvec_linear_source
from .templates import ConvGeom, Params, conv_source, linear_source


@dataclass
class SparseKernel:
    """A parsed kernel; call it with (x, *consts, [bias], [residual]) and an output of out_shape."""
    func: object                   # tvm.tirx.PrimFunc
    consts: list[np.ndarray]       # data, indices (direct conv: tap offsets), indptr, wrow, wt0, wt1, wptr
    out_shape: tuple[int, ...]
    source: str


def _bsr_consts(bsr: BSR, tiles: int, parts: int) -> list[np.ndarray]:
    if bsr.block[1] != 1:
        raise NotImplementedError(f"kernels take blocks of one column, got {bsr.block}")
    data = bsr.data.reshape(-1, bsr.block[0]).astype(np.float32)
    indices = bsr.indices.astype(np.int32)
    if data.shape[0] == 0:        # zero-size buffers are awkward as constants: one unused block
        data = np.zeros((1, bsr.block[0]), np.float32)
        indices = np.zeros(1, np.int32)
    return [np.ascontiguousarray(data), indices, bsr.indptr.astype(np.int32),
            *work_list(bsr.indptr, tiles, parts)]


def _parse(src: str, symbol: str):
    from tvm.script import tirx as T
    from tvm.script.parser import parse
    return parse(src, extra_vars={"T": T, "SYMBOL": symbol})


def linear_kernel(bsr: BSR, x_shape, p: Params, *, bias: bool, residual: bool, act: str,
                  symbol: str = "spdy_sparse_linear") -> SparseKernel:
    """Kernel for Y[..., N] = act(X[..., K] @ W^T + bias + residual), W = bsr ([N, K])."""
    n, k = bsr.shape
    if x_shape[-1] != k:
        raise ValueError(f"linear: x has {x_shape[-1]} features, weight expects {k}")
    m = int(np.prod(x_shape[:-1], dtype=np.int64))
    if p.mr > 0:
        consts = _bsr_consts(bsr, -(-m // p.mr), p.parts)
        src = rowvec_linear_source(tuple(x_shape), n, bsr.block[0], consts[0].shape[0],
                                   consts[3].shape[0], p, bias=bias, residual=residual, act=act)
    else:
        consts = _bsr_consts(bsr, -(-m // p.qt), p.parts)
        src = linear_source(tuple(x_shape), n, bsr.block[0], consts[0].shape[0], consts[3].shape[0],
                            p, bias=bias, residual=residual, act=act)
    return SparseKernel(_parse(src, symbol), consts, (*x_shape[:-1], n), src)


def conv_kernel(bsr: BSR, g: ConvGeom, p: Params, *, bias: bool, residual: bool, act: str,
                symbol: str = "spdy_sparse_conv2d") -> SparseKernel:
    """Kernel for a groups=1 conv whose weight [O, C, KH, KW] was flattened into bsr ([O, C*KH*KW])."""
    if bsr.shape != (g.o, g.c * g.kh * g.kw):
        raise ValueError(f"conv: BSR shape {bsr.shape} does not match {g}")
    if p.conv == "direct":
        _, ws, _ = plane_dims(g, p.qt)
        consts = _bsr_consts(bsr, g.n * -(-(g.oh * ws) // p.qt), p.parts)
        consts[1] = tap_offsets(consts[1], g, p.qt)     # block column -> input offset
        src = direct_conv_source(g, bsr.block[0], consts[0].shape[0], consts[3].shape[0], p,
                                 bias=bias, residual=residual, act=act)
    elif p.conv == "im2col":
        consts = _bsr_consts(bsr, g.n * -(-(g.oh * g.ow) // p.qt), p.parts)
        src = conv_source(g, bsr.block[0], consts[0].shape[0], consts[3].shape[0], p,
                          bias=bias, residual=residual, act=act)
    else:
        raise ValueError(f"unknown conv formulation {p.conv!r}; known: direct, im2col")
    return SparseKernel(_parse(src, symbol), consts, (g.n, g.o, g.oh, g.ow), src)
