"""Dense int8 Linear: ``y = act((acc - zp*wsum) * (x_scale*w_scale) + bias + residual)``, one kernel.

The kernel quantizes X (quantize.py, panel layout with the tile's MR rows) into a scratch
buffer, then runs a register-tiled u8 x s8 GEMM: each parallel task owns an MR x (NV * L)
tile of Y (L = 16 int32 lanes on AVX-512) in MR*NV accumulator registers; per k group of 4
inputs it broadcasts MR dwords of X (one contiguous run in the panel) and loads NV weight
vectors. The weights are packed at compile time as ``[NT, K4, NV*L*4]``: a tile's panel is
one contiguous stream, 4 inputs of one output per int32 lane. Measured on one core (Xeon,
AVX-512 VNNI) these tiles run at 270-290 GMAC/s against ~300 for a register-only loop.
The epilogue (snippets.Epilogue) is fused: the accumulators are requantized into a stage tile,
then residual and activation are applied while storing the tile row by row.
Tails: rows past M are computed from the zero-point padding and not stored (the store loop
runs over the tile's real rows); N is zero-padded to whole tiles in the packed constants, and
the last column tile has its own store loop over the real columns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spdy.qscheme import ActQuant
from spdy.runtime.kernels.tvmscript import parse_prim_func

from ..kernels.workers import worker_loop
from .features import LANES
from .quantize import panel_dims, quantize_stage
from .snippets import Bcast, Epilogue, Vec, alloc_acc, dot_step, epilogue_consts, zero_acc


@dataclass(frozen=True)
class DenseSpec:
    """What the kernel computes (its speed depends on all of it but the scale/zero-point values)."""
    M: int
    N: int
    K: int
    isa: str
    act: ActQuant
    epi: Epilogue
    amx: bool = False   # AMX tiles are offered (linear_amx.py): the target has them, Linux allows them

    def signature(self) -> str:
        e = self.epi
        return (f"int8_dense:M{self.M}:N{self.N}:K{self.K}:{self.isa}:{self.act.mode}:{e.mode}:"
                f"b{int(e.bias)}r{int(e.residual)}:{e.activation}" + (":amx" if self.amx else ""))


@dataclass(frozen=True)
class DenseParams:
    mr: int = 4         # rows of X per tile (broadcast dwords)
    nv: int = 4         # weight vectors per tile (NV * L output columns)
    order: str = "nm"   # parallel tile order: "nm" = row tiles innermost (weight panel reuse)
    amx: bool = False   # AMX tiles: mr x nv tiles of 16 x 16 (linear_amx.py)

    def to_json(self) -> dict:
        return asdict(self)


def effective_params(spec: DenseSpec, p: DenseParams) -> DenseParams:
    """Clamp the tile to the problem (a 1-row input gets MR = 1, a narrow N fewer vectors)."""
    if p.amx:
        return p
    lanes = LANES[spec.isa]
    return DenseParams(max(1, min(p.mr, spec.M)), max(1, min(p.nv, -(-spec.N // lanes))), p.order)


def tiles(spec: DenseSpec, p: DenseParams) -> tuple[int, int, int]:
    """(MB, NT, Np): row tiles, column tiles, N padded to whole column tiles."""
    w = p.nv * LANES[spec.isa]
    nt = -(-spec.N // w)
    return -(-spec.M // p.mr), nt, nt * w


def pack_weight(w_q: np.ndarray, lanes: int, nv: int) -> np.ndarray:
    """int8 [N, K] -> [NT, K4, NV*lanes*4]: byte (v*lanes + o)*4 + j of k step k4 is
    w[nt*NV*lanes + v*lanes + o, 4*k4 + j]; zero rows/columns pad N and K."""
    n, k = w_q.shape
    wdt = nv * lanes
    nt, k4 = -(-n // wdt), -(-k // 4)
    pad = np.zeros((nt * wdt, k4 * 4), np.int8)
    pad[:n, :k] = w_q
    return np.ascontiguousarray(pad.reshape(nt, wdt, k4, 4).transpose(0, 2, 1, 3).reshape(nt, k4, wdt * 4))


def dense_consts(spec: DenseSpec, p: DenseParams, w_q, w_scale, bias) -> list[np.ndarray]:
    """Constant arguments in call order: packed W, then the epilogue's per-output arrays."""
    p = effective_params(spec, p)
    _, _, np_ = tiles(spec, p)
    return [pack_weight(np.asarray(w_q, np.int8), LANES[spec.isa], p.nv),
            *epilogue_consts(spec.epi, w_q, w_scale, spec.act, bias, np_)]


def arg_shapes(spec: DenseSpec, p: DenseParams) -> list[tuple[str, tuple, str]]:
    """(name, shape, dtype) of every kernel parameter in call order (output last)."""
    p = effective_params(spec, p)
    lanes = LANES[spec.isa]
    _, nt, np_ = tiles(spec, p)
    k4 = -(-spec.K // 4)
    out = [("X", (spec.M, spec.K), "float32"), ("W", (nt, k4, p.nv * lanes * 4), "int8"),
           *spec.epi.const_args(np_)]
    if spec.epi.residual:
        out.append(("R", (spec.M, spec.N), "float32"))
    out.append(("Y", (spec.M, spec.N), spec.epi.out_dtype))
    return out


def scratch_lines(spec: DenseSpec, mr: int, ind: str = "    ") -> list[str]:
    """Allocations of the quantized X (and the dynamic per-row scale/zero point)."""
    mb, k4, mp = panel_dims(spec.M, spec.K, mr)
    out = [f'{ind}q = T.alloc_buffer(({mb}, {k4}, {mr * 4}), "uint8")']
    if spec.act.mode == "dynamic":
        out += [f'{ind}xs = T.alloc_buffer(({mp},), "float32")', f'{ind}zq = T.alloc_buffer(({mp},), "int32")']
    return out


def header(symbol: str, args, kernel: str) -> list[str]:
    sig = ", ".join(f'{n}: T.Buffer({tuple(s)}, "{d}")' for n, s, d in args)
    return ["@T.prim_func", f"def main({sig}):",
            f'    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, '
            f'"spdy.kernel": "{kernel}"}})']


def dense_source(spec: DenseSpec, params: DenseParams, symbol: str = "main", threads: int = 1) -> str:
    """TVMScript of the VNNI kernel; its tasks run in one loop per worker (kernels/workers.py)."""
    p = effective_params(spec, params)
    isa, lanes, epi = spec.isa, LANES[spec.isa], spec.epi
    MR, NV = p.mr, p.nv
    MB, NT, _ = tiles(spec, p)
    K4 = -(-spec.K // 4)
    IN, OUT = (MB, NT) if p.order == "nm" else (NT, MB)
    mb = f"(t % {IN})" if p.order == "nm" else f"(t // {IN})"
    nt = f"(t // {IN})" if p.order == "nm" else f"(t % {IN})"
    L = header(symbol, arg_shapes(spec, p), "int8_dense") + scratch_lines(spec, MR)
    L += quantize_stage(spec.M, spec.K, MR, spec.act)
    w = " " * 12
    workers, tasks = worker_loop(MB * NT, threads)
    L += [workers, f'        st = T.alloc_buffer(({MR * NV * lanes},), "{epi.stage_dtype}")', tasks]
    acc = [[f"a{mi}_{v}" for v in range(NV)] for mi in range(MR)]
    L += [alloc_acc(isa, a, w) for row in acc for a in row]
    for row in acc:
        for a in row:
            L += zero_acc(isa, a, w)
    L.append(f"{w}for k in range({K4}):")
    for mi in range(MR):
        for v in range(NV):
            L += dot_step(isa, acc[mi][v], Bcast("q", (mb, "k"), str(mi * 4)),
                          Vec("W", (nt, "k"), str(v * lanes * 4)), w + "    ")

    W = NV * lanes
    for mi in range(MR):             # phase 1: requantize every accumulator into the stage tile
        for v in range(NV):
            L += [f"{w}for l in T.vectorized({lanes}):",
                  f"{w}    st[{mi * W + v * lanes} + l] = "
                  f"{epi.value(f'{acc[mi][v]}[l]', f'{mb} * {MR} + {mi}', f'{nt} * {W} + {v * lanes} + l')}"]
    n_tail = spec.N - (NT - 1) * W           # columns of the last column tile
    m0, n0 = f"{mb} * {MR}", f"{nt} * {W}"
    rows = f"T.min({MR}, {spec.M} - {m0})" if spec.M % MR else str(MR)   # rows past M are padding
    if n_tail == W:
        L += epi.store_tile("st", m0, n0, rows, W, W, 1, w)
    else:
        L += [f"{w}if {nt} < {NT - 1}:", *epi.store_tile("st", m0, n0, rows, W, W, 1, w + "    "),
              f"{w}else:", *epi.store_tile("st", m0, n0, rows, n_tail, W, 1, w + "    ")]
    return "\n".join(L) + "\n"


def make_dense(spec: DenseSpec, params: DenseParams, symbol: str = "main", threads: int = 1):
    return parse_prim_func(dense_source(spec, params, symbol, threads))


def default_params(spec: DenseSpec) -> DenseParams:
    """Untuned choice: 16 accumulators; few rows -> one row, many weight vectors (batch-1 GEMV)."""
    lanes = LANES[spec.isa]
    if spec.M <= 2:
        return effective_params(spec, DenseParams(spec.M, 4, "nm"))
    if lanes == 8:  # AVX2-class: 16 vector registers
        return effective_params(spec, DenseParams(4, 2, "nm"))
    return effective_params(spec, DenseParams(8, 2, "nm"))


def candidate_params(spec: DenseSpec) -> list[DenseParams]:
    """The tuner's search space (<= 16 points), default first: MR x NV tiles that fit the
    register file (<= 28 of 32 zmm accumulators; <= 12 of 16 registers below AVX-512)."""
    out = [default_params(spec)]
    lanes = LANES[spec.isa]
    if spec.M <= 4:
        shapes = [(spec.M, 1), (spec.M, 2), (spec.M, 4), (spec.M, 8)]
    elif lanes == 8:
        shapes = [(4, 2), (6, 2), (3, 4), (2, 4), (4, 3), (8, 1), (12, 1)]
    else:
        shapes = [(8, 2), (4, 4), (6, 4), (8, 3), (16, 1), (12, 2), (4, 6), (2, 8), (14, 2)]
    # "mn" (column tiles innermost) streams the whole weight once per row tile: only worth a
    # trial when the weight stays in L2 (measured 1.3-3x slower on the BERT FFN's 2.4 MB)
    orders = ("nm", "mn") if spec.N * spec.K <= 1 << 19 else ("nm",)
    for mr, nv in shapes:
        for order in orders:
            e = effective_params(spec, DenseParams(mr, nv, order))
            if e not in out:
                out.append(e)
    return out[:16]
