"""Block-sparse int8 conv2d kernels: weights in bsr16x4 / bsr4x4 / bsr1x4 blocks (conv_blocks.py).

Only the nonzero blocks are stored (a block with any nonzero entry is kept): data holds, per
block, R int32 words (the 4 s8 weights of each of its R output channels at one tap and 4
consecutive input channels), indices the block's column group (tap * C4 + c4) and indptr
the row-block ranges. At build time each column group becomes a word offset into the phase
planes (koff = c4 * SS*PS + tap offset, conv_pack.py), so a block costs one activation load
per 16-pixel vector and R vpdpbusd, with no im2col.

Two formulations, as for the dense kernels (conv.py):
  "pix"  R output channels x NV pitched 16-pixel vectors; the block's R words are broadcast.
  "chn"  (R a multiple of the vector lanes, i.e. bsr16x4) MP output pixels x the block's 16
         channels; the block's 64 bytes are one vector load and each pixel's 4 activation
         bytes are broadcast. For small maps (7x7) where pixel vectors would be mostly junk.
Each parallel task is one (image, pixel tile, block row), block row innermost: the tile's
activations stay in L1 while the rows walk the weights. Empty block rows store just the
epilogue of a zero accumulator (bias, residual). groups > 1 and targets without VNNI use the
dense generic kernel on the masked weight (conv_emit.py decides).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conv import (ConvParams, accumulators, acc_load, acc_update, channel_store, kernel_args, kernel_head,
                   pitched_store, pitched_vectors, requant, vnni_call)
from .conv_blocks import BLOCK_ROWS, int8_conv_blocks, int8_format
from .conv_pack import QConvGeom


@dataclass(frozen=True)
class Int8BSR:
    """Nonzero blocks of an int8 conv weight in the kernels' (tap, channel) column order."""
    data: np.ndarray      # [nnzb, R] int32: 4 s8 weights per word
    indices: np.ndarray   # [nnzb] int32: column group tap * C4 + c4
    indptr: np.ndarray    # [NB + 1] int32, NB = ceil(O / R)
    o: int
    k4: int
    r: int

    @property
    def nnzb(self) -> int:
        return int(self.indices.shape[0])

    @property
    def nb(self) -> int:
        return int(self.indptr.shape[0]) - 1

    @property
    def block_sparsity(self) -> float:
        """Fraction of blocks that are empty (the level the tuning key records)."""
        return 1.0 - self.nnzb / max(1, self.nb * self.k4)

    def todense(self) -> np.ndarray:
        """The [O, K4] word matrix (tests)."""
        out = np.zeros((self.nb * self.r, self.k4), np.int32)
        rows = np.repeat(np.arange(self.nb), np.diff(self.indptr))
        for v in range(self.r):
            out[rows * self.r + v, self.indices] = self.data[:, v]
        return out[: self.o]


def to_int8_bsr(w_q: np.ndarray, fmt: str) -> Int8BSR:
    """The nonzero bsrRx4 blocks of an int8 weight [O, C, KH, KW] (or [O, K])."""
    base = int8_format(fmt)
    if base == "dense":
        raise ValueError("to_int8_bsr needs a sparse format (bsr16x4, bsr4x4, bsr1x4)")
    r = BLOCK_ROWS[base]
    words = int8_conv_blocks(np.asarray(w_q, np.int8)).view(np.int32)[..., 0]    # [O, K4]
    o, k4 = words.shape
    nb = -(-o // r)
    pad = np.zeros((nb * r, k4), np.int32)
    pad[:o] = words
    blocks = pad.reshape(nb, r, k4)
    nz = np.any(blocks != 0, axis=1)                                             # [NB, K4]
    rows, cols = np.nonzero(nz)
    data = np.ascontiguousarray(blocks[rows, :, cols]).reshape(-1, r)
    indptr = np.zeros(nb + 1, np.int32)
    indptr[1:] = np.cumsum(nz.sum(axis=1))
    return Int8BSR(data.astype(np.int32), cols.astype(np.int32), indptr, o, k4, r)


def block_offsets(bsr: Int8BSR, g: QConvGeom) -> np.ndarray:
    """koff of every block: word offset of its (tap, c4) in image 0's planes."""
    tap, c4 = np.divmod(bsr.indices.astype(np.int64), g.c4)
    tap_off = np.array([g.tap_offset(t) for t in range(g.taps)], np.int64)
    off = c4 * g.ss * g.ps + tap_off[tap] if tap.size else np.zeros(0, np.int64)
    if off.size and off.max() >= 2 ** 31:
        raise ValueError("conv input too large for int32 plane offsets")
    return off.astype(np.int32)


def sparse_consts(bsr: Int8BSR, g: QConvGeom) -> list[np.ndarray]:
    """[data (flat), koff, indptr]; an empty weight gets one unused block (no zero-size constants)."""
    data, koff = bsr.data.reshape(-1), block_offsets(bsr, g)
    if bsr.nnzb == 0:
        data, koff = np.zeros(bsr.r, np.int32), np.zeros(1, np.int32)
    return [np.ascontiguousarray(data, np.int32), koff, bsr.indptr.astype(np.int32)]


def out_channels_padded_sparse(bsr: Int8BSR) -> int:
    return bsr.nb * bsr.r


def sparse_conv_source(g: QConvGeom, bsr: Int8BSR, p: ConvParams, *, isa: str, lanes: int, mode: str,
                       bias: bool, residual: bool, act: str) -> str:
    """TVMScript of main(P, [qp], data, koff, indptr, ec, es, [bias], [R], Y)."""
    if g.groups != 1:
        raise ValueError("block-sparse int8 conv kernels need groups == 1 (grouped convs run dense)")
    if isa not in ("vnni512", "vnni256"):
        raise ValueError(f"block-sparse int8 conv kernels need VNNI, target isa is {isa!r}")
    r, nb = bsr.r, bsr.nb
    nnz = max(1, bsr.nnzb)
    wargs = [f'data: T.Buffer(({nnz * r},), "int32")', f'koff: T.Buffer(({nnz},), "int32")',
             f'indptr: T.Buffer(({nb + 1},), "int32")']
    args = kernel_args(g, mode, wargs, nb * r, bias=bias, residual=residual)
    L = kernel_head(args, g, mode, residual)
    i1, i2 = " " * 8, " " * 12
    if p.kind == "pix":
        nv = p.nv
        vec = pitched_vectors(g, lanes)
        nvt = -(-vec // nv)
        L += [f"    for t in T.parallel({g.n * nvt * nb}):",
              f"{i1}rb: T.let = t % {nb}",
              f"{i1}pt: T.let = t // {nb}",
              f"{i1}pbn: T.let = (pt // {nvt}) * {g.c4 * g.ss * g.ps}"]
        L += [f"{i1}p{v}: T.let = T.min((pt % {nvt}) * {nv} + {v}, {vec - 1}) * {lanes}" for v in range(nv)]
        accs = [[f"a{m}_{v}" for v in range(nv)] for m in range(r)]
        L += accumulators([a for row in accs for a in row], lanes, i1)
        # loop bounds as extent + offset: a loop starting at a loaded value was miscompiled (sparse/templates.py)
        L += [f"{i1}for jj in range(indptr[rb + 1] - indptr[rb]):",
              f"{i2}j: T.let = indptr[rb] + jj",
              f"{i2}ko: T.let = pbn + koff[j]"]
        for m in range(r):
            w = f"T.broadcast(data[j * {r} + {m}], {lanes})"
            for v in range(nv):
                x = f'P.vload([ko + p{v}], "int32x{lanes}")'
                L.append(f"{i2}{acc_update(accs[m][v], vnni_call(isa, acc_load(accs[m][v], lanes), x, w, lanes), lanes)}")
        for m in range(r):
            ind = i1
            if g.o % r:
                L.append(f"{i1}if rb * {r} + {m} < {g.o}:")
                ind = i2
            for v in range(nv):
                o = f"rb * {r} + {m}"
                val = requant(acc_load(accs[m][v], lanes), o, mode, lanes)
                if bias:
                    val += f" + bias[{o}]"
                L += pitched_store(g, lanes, ind, val, f"((pt // {nvt}) * {g.o} + {o}) * {g.oh * g.ow}", f"p{v}",
                                   residual=residual, act=act, tag=f"{m}_{v}")
    elif p.kind == "chn":
        if r % lanes:
            raise ValueError(f"channel-lane sparse kernel needs block rows ({r}) a multiple of the vector lanes ({lanes})")
        mp, nv = p.mr, r // lanes
        npx = g.oh * g.ow
        tpi = -(-npx // mp)
        L += [f"    for t in T.parallel({g.n * tpi * nb}):",
              f"{i1}rb: T.let = t % {nb}",
              f"{i1}pt: T.let = t // {nb}",
              f"{i1}pbn: T.let = (pt // {tpi}) * {g.c4 * g.ss * g.ps}"]
        for i in range(mp):
            L += [f"{i1}q{i}: T.let = T.min((pt % {tpi}) * {mp} + {i}, {npx - 1})",
                  f"{i1}b{i}: T.let = (q{i} // {g.ow}) * {g.wq} + q{i} % {g.ow}"]
        accs = [[f"a{i}_{v}" for v in range(nv)] for i in range(mp)]
        L += accumulators([a for row in accs for a in row], lanes, i1)
        L += [f"{i1}for jj in range(indptr[rb + 1] - indptr[rb]):",
              f"{i2}j: T.let = indptr[rb] + jj",
              f"{i2}ko: T.let = pbn + koff[j]"]
        for v in range(nv):
            w = f'data.vload([j * {r} + {v * lanes}], "int32x{lanes}")'
            for i in range(mp):
                x = f"T.broadcast(P[ko + b{i}], {lanes})"
                L.append(f"{i2}{acc_update(accs[i][v], vnni_call(isa, acc_load(accs[i][v], lanes), x, w, lanes), lanes)}")
        for i in range(mp):
            for v in range(nv):
                L += channel_store(g, lanes, i1, accs[i][v], f"rb * {r} + {v * lanes}", f"q{i}", f"pt // {tpi}",
                                   mode, bias=bias, residual=residual, act=act, guard=g.o % r != 0)
    else:
        raise ValueError(f"unknown sparse int8 conv kernel kind {p.kind!r}; known: pix, chn")
    return "\n".join(L) + "\n"


def sparse_candidates(g: QConvGeom, r: int, lanes: int) -> list[ConvParams]:
    """Tiles within ~24 accumulator registers; channel lanes only for whole-vector blocks."""
    vec = pitched_vectors(g, lanes)
    nvs = {16: (1,), 4: (2, 4, 6), 1: (4, 8, 12, 16)}.get(r, (1,))
    out = [ConvParams("pix", r, nv) for nv in nvs if nv <= vec or nv == nvs[0]]
    if r % lanes == 0:
        npx = g.oh * g.ow
        nv = r // lanes
        out += [ConvParams("chn", mp, nv) for mp in (4, 7, 8, 12, 16, 24) if mp * nv <= 24 and mp <= npx]
    return out


def sparse_default(g: QConvGeom, r: int, lanes: int) -> ConvParams:
    """Untuned choice: channel lanes for bsr16x4 on small maps, else pixel lanes."""
    if r % lanes == 0 and g.ow < 14:
        return ConvParams("chn", 8, r // lanes)
    nv = {16: 1, 4: 4, 1: 8}.get(r, 1)
    return ConvParams("pix", r, min(nv, max(1, pitched_vectors(g, lanes))))
