"""Dense int8 conv2d on AMX tiles (Intel AMX-INT8), reading the same phase planes as conv.py.

An AMX tile multiply C[16 x 16] int32 += A[16 x 4K] s8 . B[K x 16 x 4] u8 (tdpbsud) does
16 x 16 x 64 multiply-adds in one instruction, 8x what one AVX-512 VNNI instruction does;
on a CPU with AMX (Sapphire Rapids and later) OpenVINO's int8 ResNet-18 runs 2.6x faster
than spdy's VNNI kernels. The phase planes already are AMX's B operand: plane words are
[16 consecutive pitched pixels x 4 channels] = 64 bytes, one tile row per channel quad,
rows a plane apart. So a tile's rows are quads of input channels (kq of them, <= 16), its
columns 16 output pixels; A holds 16 output channels x kq quads of weights for one tap.

Kind "amx" of ConvParams: mr = channel tiles (16 output channels each), nv = pixel tiles
(16 pitched positions each), mr * nv <= 4 accumulator tiles (tmm0-3), mr weight tiles
(tmm4-5) and nv activation tiles (tmm6-7). Each task configures the tiles (ldtilecfg),
accumulates over every tap and channel quad, stores the accumulators to four 1 KB stack
buffers and runs conv.py's epilogue (zero-point correction, scale, bias, residual,
activation; junk columns masked) from them. Tile state is per thread and released per task.

The kernel needs the target's amx-tile and amx-int8 features and Linux's permission for the
process to use the tile data state (spdy.runtime.cpu_features.amx_usable).
"""
from __future__ import annotations

import numpy as np

from .conv import ConvParams, kernel_args, kernel_head, pitched_store, pitched_vectors, requant, tap_loops, \
    task_split
from .conv_blocks import int8_conv_blocks
from .conv_pack import QConvGeom
from ..kernels.workers import worker_loop

LANES = 16          # a tile row of int32 accumulators: 16 output pixels
ACC_TILES = 4       # tmm0-3 accumulate, tmm4-5 hold weights, tmm6-7 activations


def amx_kq(c4: int) -> int:
    """Channel quads per tile (K/4 rows of the activation tile): the largest divisor of c4
    that is <= 16, so every K step is a whole tile and the config is one per kernel."""
    return max(d for d in range(1, min(16, c4) + 1) if c4 % d == 0)


def amx_channels_padded(g: QConvGeom, p: ConvParams) -> int:
    return -(-g.o // (LANES * p.mr)) * LANES * p.mr


def pack_amx_weight(w_q: np.ndarray, g: QConvGeom, p: ConvParams) -> np.ndarray:
    """int32 words [OB, tap, K chunk, MR, 16 channels, kq quads]: one weight tile is 16 rows of
    kq words, contiguous (row stride kq*4 bytes); padded output channels are 0."""
    kq = amx_kq(g.c4)
    words = int8_conv_blocks(np.asarray(w_q, np.int8)).view(np.int32)[..., 0].reshape(g.o, g.taps, g.c4)
    wp = np.zeros((amx_channels_padded(g, p), g.taps, g.c4), np.int32)
    wp[:g.o] = words
    w = wp.reshape(-1, p.mr, LANES, g.taps, g.c4 // kq, kq)       # [OB, MR, 16, tap, KC, kq]
    return np.ascontiguousarray(w.transpose(0, 3, 4, 1, 2, 5)).reshape(-1)


def amx_candidates(g: QConvGeom) -> list[ConvParams]:
    """Tile grids worth timing: 2x2 first (each weight and activation tile used twice), then
    the one-sided shapes for few channels or few pixels."""
    vec = pitched_vectors(g, LANES)
    out = []
    for mr, nv in ((2, 2), (1, 4), (4, 1), (1, 2), (2, 1)):
        if mr > 2 or nv > 2:
            continue        # two weight and two activation tiles at most (tmm4-7)
        if (mr == 1 or g.o > LANES) and (nv == 1 or vec > 1):
            out.append(ConvParams("amx", mr, nv))
    outer = [ConvParams("amx", q.mr, q.nv, "channels") for q in out[:2]]
    return out + outer


def tile_config_lines(shape: dict[int, tuple[int, int]], ind: str) -> list[str]:
    """Lines that load the tile configuration {tile: (rows, bytes per row)}: palette 1, colsb
    as u16 at byte 16 + 2i, rows as u8 at byte 48 + i; written as 16 int32 words."""
    cfg = np.zeros(64, np.uint8)
    cfg[0] = 1
    for tile, (rows, colsb) in shape.items():
        cfg[16 + 2 * tile] = colsb
        cfg[48 + tile] = rows
    words = cfg.view(np.int32)    # (address_of: access_ptr failed TVM's type check after storage merging)
    out = [f'{ind}cfg = T.alloc_buffer((16,), "int32")']
    out += [f"{ind}cfg[{i}] = T.int32({int(v)})" for i, v in enumerate(words)]
    return out + [ind + _call("ldtilecfg", "T.address_of(cfg[0])")]


def _call(intrin: str, *args) -> str:
    return f'T.evaluate(T.call_llvm_intrin("void", "llvm.x86.{intrin}", {", ".join(args)}))'


def _ptr(buf: str, rw: str, offset: str | None = None) -> str:
    return f'{buf}.access_ptr("{rw}"' + (f", offset={offset})" if offset else ")")


def _u8(v: int) -> str:
    return f"T.uint8({v})"


def amx_source(g: QConvGeom, p: ConvParams, mode: str, *, bias: bool, residual: bool, act: str,
               threads: int = 1) -> str:
    """TVMScript of main(P, [qp], Wa, ec, es, [bias], [R], Y) on AMX tiles (see the module)."""
    if g.groups != 1:
        raise ValueError(f"the AMX int8 conv kernel needs groups == 1 (got {g.groups}); use kind 'generic'")
    mt_n, nt_n = p.mr, p.nv
    if mt_n > 2 or nt_n > 2:
        raise ValueError(f"AMX tiles: at most 2 x 2 accumulator tiles, got {mt_n} x {nt_n}")
    kq = amx_kq(g.c4)
    nk = g.c4 // kq
    ob = amx_channels_padded(g, p) // (LANES * mt_n)
    vec = pitched_vectors(g, LANES)
    nvt = -(-vec // nt_n)
    wlen = ob * g.taps * nk * mt_n * LANES * kq
    args = kernel_args(g, mode, [f'Wa: T.Buffer(({wlen},), "int32")'], ob * LANES * mt_n, bias=bias,
                       residual=residual)
    L = kernel_head(args, g, mode, residual)
    i1, i2 = " " * 8, " " * 12
    acc = {(m, v): m * nt_n + v for m in range(mt_n) for v in range(nt_n)}
    wt = {m: ACC_TILES + m for m in range(mt_n)}
    at = {v: ACC_TILES + 2 + v for v in range(nt_n)}
    shape = {**{t: (LANES, 64) for t in acc.values()}, **{t: (LANES, 4 * kq) for t in wt.values()},
             **{t: (kq, 64) for t in at.values()}}
    workers, tasks = worker_loop(g.n * nvt * ob, threads)
    L += [workers] + tile_config_lines(shape, i1)
    L += [f'{i1}cs{m}_{v} = T.alloc_buffer(({LANES * LANES},), "int32")' for (m, v) in acc] + [tasks]
    B = task_split(p, g.n * nvt, ob, i1)       # the task body, indented under the task loop below
    B += [f"{i1}n: T.let = pt // {nvt}"]
    B += [f"{i1}p{v}: T.let = T.min((pt % {nvt}) * {nt_n} + {v}, {vec - 1}) * {LANES}" for v in range(nt_n)]
    B += [f"{i1}{_call('tilezero', _u8(c))}" for c in acc.values()]
    plane = g.ss * g.ps
    B += [f"{i1}for kc in range({nk}):", f"{i2}pb: T.let = (n * {g.c4} + kc * {kq}) * {plane}"]
    B += tap_loops(g, i2)
    i4 = i2 + " " * 8
    B += [f"{i4}wb: T.let = ((ob * {g.taps} + tap) * {nk} + kc) * {mt_n * LANES * kq}"]
    for m, tile in wt.items():
        B.append(i4 + _call("tileloadd64", _u8(tile), _ptr("Wa", "r", f"wb + {m * LANES * kq}"), f"T.int64({4 * kq})"))
    for v, tile in at.items():
        B.append(i4 + _call("tileloadd64", _u8(tile), _ptr("P", "r", f"pb + ko_t + p{v}"), f"T.int64({4 * plane})"))
    for (m, v), c in acc.items():
        B.append(f"{i4}{_call('tdpbsud', _u8(c), _u8(wt[m]), _u8(at[v]))}")
    for (m, v), c in acc.items():
        B.append(i1 + _call("tilestored64", _u8(c), _ptr(f"cs{m}_{v}", "w"), "T.int64(64)"))
    for m in range(mt_n):
        B += [f"{i1}for r in range({LANES}):", f"{i2}o{m}: T.let = (ob * {mt_n} + {m}) * {LANES} + r"]
        ind = i2
        if g.o % (LANES * mt_n):
            B.append(f"{i2}if o{m} < {g.o}:")
            ind = i2 + "    "
        for v in range(nt_n):
            val = requant(f'cs{m}_{v}.vload([r * {LANES}], "int32x{LANES}")', f"o{m}", mode, LANES)
            if bias:
                val += f" + bias[o{m}]"
            B += pitched_store(g, LANES, ind, val, f"(n * {g.o} + o{m}) * {g.oh * g.ow}", f"p{v}",
                               residual=residual, act=act, tag=f"{m}_{v}")
    L += ["    " + ln for ln in B]
    L.append(f"{i1}{_call('tilerelease')}")
    return "\n".join(L) + "\n"
