"""Dense int8 Linear on AMX tiles: ``y = act((acc - zp*wsum) * (x_scale*w_scale) + bias + residual)``.

The VNNI kernel (linear.py) does 16 x 4 multiply-adds per instruction; one AMX tdpbusd does
C[16 rows x 16 outputs] += A[16 rows x 64 u8] . B[16 x (16 outputs x 4) s8], 16x16x64.
Both operands are already in AMX's shapes: X quantized row-major (the panel layout of one
row) is A, 16 rows apart by K bytes; linear.py's packed weight [NT, K4, NV*16*4] is B, one
row of 16 outputs x 4 inputs per k group. Each task owns (MR x 16) rows x (NV x 16) columns
of Y in MR*NV <= 4 accumulator tiles (tmm0-3; A in tmm4-5, B in tmm6-7), accumulates over K
in chunks of kq k groups (the largest divisor of K/4 up to 16, one tile config per kernel),
stores the tiles to 1 KB stack buffers and runs linear.py's epilogue from them. The rows of
the last row tile past M read quantized rows that are never written (their results are not
stored). Needs what conv_amx.py needs: the target's AMX features and Linux's permission.
"""
from __future__ import annotations

from ..kernels.workers import worker_loop
from .conv_amx import ACC_TILES, _call, _ptr, amx_kq, tile_config_lines
from .linear import DenseParams, DenseSpec, arg_shapes, header, tiles
from .quantize import quantize_stage

TILE = 16


def amx_row_tiles(spec: DenseSpec, p: DenseParams) -> tuple[int, int]:
    """(row tiles of MR*16 rows, rows of the quantized X including the last tile's padding)."""
    mb = -(-spec.M // (TILE * p.mr))
    return mb, mb * TILE * p.mr


def amx_candidates(spec: DenseSpec) -> list[DenseParams]:
    """Tile grids (rows x columns of 16): 2x2 first; one row tile for few rows."""
    out = []
    for mr, nv in ((2, 2), (1, 2), (2, 1), (1, 1)):
        if (mr == 1 or spec.M > TILE) and (nv == 1 or spec.N > TILE):
            out.append(DenseParams(mr, nv, "nm", amx=True))
    return out


def amx_dense_source(spec: DenseSpec, p: DenseParams, symbol: str = "main", threads: int = 1) -> str:
    mt_n, nt_n = p.mr, p.nv
    if mt_n > 2 or nt_n > 2:
        raise ValueError(f"AMX tiles: at most 2 x 2 accumulator tiles, got {mt_n} x {nt_n}")
    epi = spec.epi
    k4 = -(-spec.K // 4)
    kq = amx_kq(k4)
    mb, mpad = amx_row_tiles(spec, p)
    _, nt, _ = tiles(spec, p)                  # column tiles of NV*16, as the packed weight has them
    w = nt_n * TILE
    L = header(symbol, arg_shapes(spec, p), "int8_dense_amx")
    # q (the quantize stage's uint8 rows) is a view of int32 words, which the tiles load: TVM
    # types a buffer's data pointer by its first declaration, and the stage may view it as int32
    L += [f'    qw = T.alloc_buffer(({mpad * k4},), "int32")',
          f'    q = T.decl_buffer(({mpad}, {k4}, 4), "uint8", data=qw.data)']
    if spec.act.mode == "dynamic":
        L += [f'    xs = T.alloc_buffer(({mpad},), "float32")', f'    zq = T.alloc_buffer(({mpad},), "int32")']
    L += quantize_stage(spec.M, spec.K, 1, spec.act)
    acc = {(m, v): m * nt_n + v for m in range(mt_n) for v in range(nt_n)}
    at = {m: ACC_TILES + m for m in range(mt_n)}
    bt = {v: ACC_TILES + 2 + v for v in range(nt_n)}
    shape = {**{c: (TILE, 64) for c in acc.values()}, **{a: (TILE, 4 * kq) for a in at.values()},
             **{b: (kq, 64) for b in bt.values()}}
    # one task loop per worker thread (kernels/workers.py): the tile config, the accumulator
    # dumps and the stage tile once per worker
    iw, i1, i2 = " " * 8, " " * 12, " " * 16
    workers, tasks = worker_loop(mb * nt, threads)
    L += [workers] + tile_config_lines(shape, iw)
    L += [f'{iw}cs{m}_{v} = T.alloc_buffer(({TILE * TILE},), "int32")' for (m, v) in acc]
    L += [f'{iw}st = T.alloc_buffer(({mt_n * TILE * w},), "{epi.stage_dtype}")',
          tasks, f"{i1}mb: T.let = t % {mb}", f"{i1}nt: T.let = t // {mb}"]
    L += [i1 + _call("tilezero", f"T.uint8({c})") for c in acc.values()]
    L.append(f"{i1}for kc in range({k4 // kq}):")
    for m, tile in at.items():
        off = f"(mb * {mt_n * TILE} + {m * TILE}) * {k4} + kc * {kq}"
        L.append(i2 + _call("tileloadd64", f"T.uint8({tile})", _ptr("qw", "r", off), f"T.int64({4 * k4})"))
    for v, tile in bt.items():
        off = f"(nt * {k4} + kc * {kq}) * {w * 4} + {v * 64}"
        L.append(i2 + _call("tileloadd64", f"T.uint8({tile})", _ptr("W", "r", off), f"T.int64({w * 4})"))
    for (m, v), c in acc.items():
        L.append(i2 + _call("tdpbusd", f"T.uint8({c})", f"T.uint8({at[m]})", f"T.uint8({bt[v]})"))
    for (m, v), c in acc.items():
        L.append(i1 + _call("tilestored64", f"T.uint8({c})", _ptr(f"cs{m}_{v}", "w"), "T.int64(64)"))
    m0, n0 = f"mb * {mt_n * TILE}", f"nt * {w}"
    for (m, v) in acc:               # phase 1: requantize every accumulator into the stage tile
        L += [f"{i1}for r in range({TILE}):", f"{i2}for l in T.vectorized({TILE}):",
              f"{i2}    st[({m * TILE} + r) * {w} + {v * TILE} + l] = "
              + epi.value(f"cs{m}_{v}[r * {TILE} + l]", f"{m0} + {m * TILE} + r", f"{n0} + {v * TILE} + l")]
    n_tail = spec.N - (nt - 1) * w
    rows = f"T.min({mt_n * TILE}, {spec.M} - {m0})" if spec.M % (mt_n * TILE) else str(mt_n * TILE)
    if n_tail == w:
        L += epi.store_tile("st", m0, n0, rows, w, w, 1, i1)
    else:
        L += [f"{i1}if nt < {nt - 1}:", *epi.store_tile("st", m0, n0, rows, w, w, 1, i2),
              f"{i1}else:", *epi.store_tile("st", m0, n0, rows, n_tail, w, 1, i2)]
    L.append(iw + _call("tilerelease"))
    return "\n".join(L) + "\n"
