"""Block-sparse int8 Linear: formats bsr16x4, bsr4x4, bsr1x4 (R output rows x 4 inputs per block).

A block spans 4 consecutive inputs because ``vpdpbusd`` reduces 4 products per int32 lane;
the weight arrives as a dense int8 [N, K] whose all-zero blocks are dropped (`bsr_blocks`).
Block data is stored ``[nnzb, R*4]``, byte ``r*4 + j`` = w[row r, input 4c + j]. The kernel
quantizes X first (quantize.py), like the dense one, and fuses the same epilogue.

Two formulations (the tuner picks per layer; `candidates`):
  "outputs"  lanes over the 16 output rows of a 16x4 block (the block is one 64-byte vector):
             per nonzero block, MR broadcast dwords of X (panel layout, one contiguous run) x
             one weight vector -> MR dot steps. Epilogue and stores are row-contiguous like
             the dense kernel's. Good for any M, the only choice for M = 1 (batch-1 vectors).
  "tokens"   lanes over 16 rows of X (tokens) for R = 4 or 1 (also 16): X in the panel layout
             with the tile's MT*16 tokens, so 16 tokens of one k group are one vector; per block,
             MT token vectors x R broadcast weight dwords -> R*MT dot steps. A register holds one
             output column for 16 tokens, so a work item takes 16/R consecutive block rows (16
             outputs) one after the other into a stage tile [output][token], and stores it
             transposed: whole 64-byte runs of each row of Y (a store per element with stride N
             touched a cache line per element: 3-4x slower).
With few rows of X (batch-1 vectors) a block row's loop is a chain of dependent vpdpbusd (5
cycles each); `split` > 1 accumulates alternate blocks into separate register sets, summed
before the epilogue (bsr1x4 at M = 1: 2.3x faster with 4 sets).
Threads: `parts` parallel iterations walk balanced work lists (spdy.runtime.sparse.balance:
block rows have very different nonzero counts) of (block row or group of 16 outputs, tile range).
Empty block rows give ``y = act(bias + residual)`` (their wsum is 0).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spdy.qscheme import ActQuant
from spdy.runtime.kernels.tvmscript import parse_prim_func
from spdy.runtime.sparse.balance import work_list

from .features import LANES
from .linear import header, scratch_lines
from .quantize import quantize_stage
from .snippets import Bcast, Epilogue, Vec, alloc_acc, dot_step, epilogue_consts, zero_acc

#: block rows of each format (a block is R outputs x 4 consecutive inputs)
SPARSE_FORMATS = {"bsr16x4": 16, "bsr4x4": 4, "bsr1x4": 1}


def block_rows(fmt: str) -> int:
    try:
        return SPARSE_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown int8 sparse format {fmt!r}; known: {sorted(SPARSE_FORMATS)}") from None


@dataclass(frozen=True)
class Blocks:
    """The nonzero R x 4 blocks of an int8 weight [N, K] (K padded to 4, N to R with zeros)."""
    data: np.ndarray     # [nnzb, R*4] int8
    indices: np.ndarray  # [nnzb] int32: block column c (inputs 4c .. 4c+3)
    indptr: np.ndarray   # [NBR + 1] int32
    shape: tuple[int, int]
    r: int

    @property
    def nnzb(self) -> int:
        return int(self.indices.shape[0])

    @property
    def sparsity(self) -> float:
        """Fraction of zero blocks (the level the latency table keys by)."""
        n, k = self.shape
        total = -(-n // self.r) * -(-k // 4)
        return 1.0 - self.nnzb / max(1, total)

    def todense(self) -> np.ndarray:
        n, k = self.shape
        nbr, k4 = len(self.indptr) - 1, -(-k // 4)
        out = np.zeros((nbr, self.r, k4, 4), np.int8)
        rows = np.repeat(np.arange(nbr), np.diff(self.indptr))
        out[rows, :, self.indices, :] = self.data.reshape(-1, self.r, 4)
        return out.reshape(nbr * self.r, k4 * 4)[:n, :k]


def bsr_blocks(w_q: np.ndarray, fmt: str) -> Blocks:
    """Blocks of a dense int8 weight: a block with any nonzero is kept, row-major order."""
    r = block_rows(fmt)
    w = np.asarray(w_q)
    if w.dtype != np.int8 or w.ndim != 2:
        raise ValueError(f"int8 sparse weight must be a 2-D int8 array, got {w.dtype} {w.shape}")
    n, k = w.shape
    nbr, k4 = -(-n // r), -(-k // 4)
    pad = np.zeros((nbr * r, k4 * 4), np.int8)
    pad[:n, :k] = w
    b = pad.reshape(nbr, r, k4, 4)
    nz = np.any(b != 0, axis=(1, 3))                     # [NBR, K4]
    rows, cols = np.nonzero(nz)
    data = np.ascontiguousarray(b[rows, :, cols, :]).reshape(-1, r * 4)
    indptr = np.zeros(nbr + 1, np.int32)
    indptr[1:] = np.cumsum(nz.sum(axis=1))
    return Blocks(data, cols.astype(np.int32), indptr, (n, k), r)


@dataclass(frozen=True)
class SparseSpec:
    M: int
    N: int
    K: int
    isa: str
    fmt: str
    act: ActQuant
    epi: Epilogue

    def signature(self) -> str:
        e = self.epi
        return (f"int8_{self.fmt}:M{self.M}:N{self.N}:K{self.K}:{self.isa}:{self.act.mode}:{e.mode}:"
                f"b{int(e.bias)}r{int(e.residual)}:{e.activation}")


@dataclass(frozen=True)
class SparseParams:
    form: str = "outputs"   # "outputs" | "tokens"
    mr: int = 8             # outputs: rows of X per tile; tokens: token vectors (x L) per tile
    parts: int = 2          # parallel work lists
    split: int = 1          # independent accumulator sets over the block loop (summed at the end):
                            # breaks vpdpbusd's 5-cycle dependency chain when few rows of X are live

    def to_json(self) -> dict:
        return asdict(self)


def _tile_rows(spec: SparseSpec, p: SparseParams) -> int:
    """Rows of X per tile (the panel height of the quantized X)."""
    return p.mr if p.form == "outputs" else p.mr * LANES[spec.isa]


def effective_params(spec: SparseSpec, p: SparseParams) -> SparseParams:
    lanes = LANES[spec.isa]
    if p.form == "outputs":
        if block_rows(spec.fmt) != 16:
            raise ValueError(f"the outputs formulation needs 16-row blocks (bsr16x4), not {spec.fmt}")
        return SparseParams("outputs", max(1, min(p.mr, spec.M)), max(1, p.parts), max(1, p.split))
    if p.form != "tokens":
        raise ValueError(f"unknown sparse formulation {p.form!r}; known: outputs, tokens")
    return SparseParams("tokens", max(1, min(p.mr, -(-spec.M // lanes))), max(1, p.parts), max(1, p.split))


def arg_shapes(spec: SparseSpec, blocks: Blocks, p: SparseParams, nwork: int) -> list[tuple[str, tuple, str]]:
    r = blocks.r
    nbr = len(blocks.indptr) - 1
    nnzb = max(1, blocks.nnzb)
    out = [("X", (spec.M, spec.K), "float32"), ("data", (nnzb, r * 4), "int8"), ("indices", (nnzb,), "int32"),
           ("indptr", (nbr + 1,), "int32"), ("wrow", (nwork,), "int32"), ("wt0", (nwork,), "int32"),
           ("wt1", (nwork,), "int32"), ("wptr", (p.parts + 1,), "int32"), *spec.epi.const_args(nbr * r)]
    if spec.epi.residual:
        out.append(("R", (spec.M, spec.N), "float32"))
    out.append(("Y", (spec.M, spec.N), spec.epi.out_dtype))
    return out


def sparse_consts(spec: SparseSpec, blocks: Blocks, p: SparseParams, w_q, w_scale, bias) -> list[np.ndarray]:
    """Constant arguments in call order (block data, indices, indptr, work lists, epilogue arrays)."""
    p = effective_params(spec, p)
    mt = _tile_rows(spec, p)
    data, indices = blocks.data, blocks.indices
    if blocks.nnzb == 0:   # zero-size constants are awkward: one unused block
        data, indices = np.zeros((1, blocks.r * 4), np.int8), np.zeros(1, np.int32)
    nbr = len(blocks.indptr) - 1
    work = work_list(_group_indptr(blocks, group_rows(spec, p)), -(-spec.M // mt), p.parts)
    return [np.ascontiguousarray(data), indices.astype(np.int32), blocks.indptr.astype(np.int32), *work,
            *epilogue_consts(spec.epi, w_q, w_scale, spec.act, bias, nbr * blocks.r)]


def group_rows(spec: SparseSpec, p: SparseParams) -> int:
    """Block rows per work item: tokens tiles gather 16 outputs (16/R block rows) so that the
    stores write whole 64-byte runs of a row of Y; outputs tiles are one 16-row block row."""
    return 1 if p.form == "outputs" else 16 // block_rows(spec.fmt)


def _group_indptr(blocks: Blocks, g: int) -> np.ndarray:
    nbr = len(blocks.indptr) - 1
    return blocks.indptr[np.minimum(np.arange(0, -(-nbr // g) + 1) * g, nbr)]


def sparse_source(spec: SparseSpec, blocks: Blocks, params: SparseParams, nwork: int, symbol: str = "main") -> str:
    p = effective_params(spec, params)
    isa, lanes, epi, r = spec.isa, LANES[spec.isa], spec.epi, blocks.r
    tm = _tile_rows(spec, p)
    nbr = len(blocks.indptr) - 1
    G = group_rows(spec, p)
    ngroups = -(-nbr // G)
    L = header(symbol, arg_shapes(spec, blocks, p, nwork), f"int8_{spec.fmt}") + scratch_lines(spec, tm)
    L += quantize_stage(spec.M, spec.K, tm, spec.act)
    L += [f"    for part in T.parallel({p.parts}):",
          "        for wi in range(wptr[part + 1] - wptr[part]):",
          "            w: T.let = wptr[part] + wi",
          "            for ti in range(wt1[w] - wt0[w]):",
          "                tile: T.let = wt0[w] + ti"]
    ind = " " * 16
    U = p.split
    if p.form == "outputs":
        nvec = max(1, r // lanes)
        acc = [[f"a{mi}_{h}" for h in range(nvec)] for mi in range(p.mr)]
        st_size = p.mr * 16
    else:
        acc = [[f"a{rr}_{tv}" for tv in range(p.mr)] for rr in range(r)]
        st_size = 16 * tm
    flat = [f"{a}_{u}" for row in acc for a in row for u in range(U)]
    L += [alloc_acc(isa, a, ind) for a in flat] + [f'{ind}st = T.alloc_buffer(({st_size},), "{epi.stage_dtype}")']
    body = ind
    if G > 1:   # the group's block rows one after the other, each into the stage tile
        last = nbr - (ngroups - 1) * G
        ext = str(G) if last == G else f"T.min({G}, {nbr} - wrow[w] * {G})"
        L += [f"{ind}for b in range({ext}):", f"{ind}    br: T.let = wrow[w] * {G} + b"]
        body = ind + "    "
        brow = "br"
    else:
        brow = "wrow[w]"
    for a in flat:
        L += zero_acc(isa, a, body)
    def dots(u: int, j: str, c: str, ind2: str) -> list[str]:
        """The dot steps of block j (column group c) into accumulator set u."""
        out = []
        if p.form == "outputs":
            for mi in range(p.mr):
                for h in range(nvec):
                    out += dot_step(isa, f"{acc[mi][h]}_{u}", Bcast("q", ("tile", c), str(mi * 4)),
                                    Vec("data", (j,), str(h * lanes * 4)), ind2)
        else:
            for rr in range(r):
                for tv in range(p.mr):
                    out += dot_step(isa, f"{acc[rr][tv]}_{u}", Vec("q", ("tile", c), str(tv * lanes * 4)),
                                    Bcast("data", (j,), str(rr * 4)), ind2)
        return out
    cnt = f"(indptr[{brow} + 1] - indptr[{brow}])"
    if U == 1:
        L += [f"{body}for jj in range({cnt}):", f"{body}    j: T.let = indptr[{brow}] + jj",
              f"{body}    c: T.let = indices[j]", *dots(0, "j", "c", body + "    ")]
    else:     # U blocks per step into U accumulator sets, then the remainder into set 0
        L.append(f"{body}for jo in range({cnt} // {U}):")
        for u in range(U):
            L += [f"{body}    j{u}: T.let = indptr[{brow}] + jo * {U} + {u}", f"{body}    c{u}: T.let = indices[j{u}]"]
        for u in range(U):
            L += dots(u, f"j{u}", f"c{u}", body + "    ")
        L += [f"{body}for jt in range({cnt} % {U}):",
              f"{body}    j: T.let = indptr[{brow}] + {cnt} // {U} * {U} + jt",
              f"{body}    c: T.let = indices[j]", *dots(0, "j", "c", body + "    ")]

    def total(a: str) -> str:
        return " + ".join(f"{a}_{u}[l]" for u in range(U)) if U > 1 else f"{a}_0[l]"
    if p.form == "outputs":
        for mi in range(p.mr):        # phase 1: stage [row of X][16 outputs]
            for h in range(nvec):
                L += [f"{body}for l in T.vectorized({lanes}):",
                      f"{body}    st[{mi * 16 + h * lanes} + l] = "
                      f"{epi.value(f'({total(acc[mi][h])})', f'tile * {tm} + {mi}', f'{brow} * 16 + {h * lanes} + l')}"]
        row_stride, col_stride = 16, 1
    else:
        for rr in range(r):          # phase 1: stage [16 outputs][tokens]
            for tv in range(p.mr):
                o = f"(b * {r} + {rr})" if G > 1 else str(rr)
                L += [f"{body}for l in T.vectorized({lanes}):",
                      f"{body}    st[{o} * {tm} + {tv * lanes} + l] = "
                      f"{epi.value(f'({total(acc[rr][tv])})', f'tile * {tm} + {tv * lanes} + l', f'{brow} * {r} + {rr}')}"]
        row_stride, col_stride = 1, tm
    m0, n0 = f"tile * {tm}", f"wrow[w] * {16 if p.form == 'outputs' else G * r}"
    width = 16 if p.form == "outputs" else G * r      # outputs per work item
    rows = f"T.min({tm}, {spec.M} - {m0})" if spec.M % tm else str(tm)
    n_tail = spec.N - (ngroups - 1) * width
    if n_tail == width:
        L += epi.store_tile("st", m0, n0, rows, width, row_stride, col_stride, ind)
    else:
        L += [f"{ind}if wrow[w] < {ngroups - 1}:",
              *epi.store_tile("st", m0, n0, rows, width, row_stride, col_stride, ind + "    "),
              f"{ind}else:", *epi.store_tile("st", m0, n0, rows, n_tail, row_stride, col_stride, ind + "    ")]
    return "\n".join(L) + "\n"


def make_sparse(spec: SparseSpec, blocks: Blocks, params: SparseParams, nwork: int, symbol: str = "main"):
    return parse_prim_func(sparse_source(spec, blocks, params, nwork, symbol))


def _chains(spec: SparseSpec, p: SparseParams) -> int:
    """Independent accumulator registers per block step (vpdpbusd has ~5 cycles of latency and
    two issue ports: ~10 chains keep it busy)."""
    lanes = LANES[spec.isa]
    return p.mr * max(1, 16 // lanes) if p.form == "outputs" else block_rows(spec.fmt) * p.mr


def _with_split(spec: SparseSpec, p: SparseParams) -> SparseParams:
    """p with enough accumulator sets for ~8 chains (few rows of X: a batch-1 vector)."""
    p = effective_params(spec, p)
    c = _chains(spec, p)
    split = 1 if c >= 8 else min(8, -(-8 // c))
    return SparseParams(p.form, p.mr, p.parts, split)


def default_params(spec: SparseSpec, num_threads: int) -> SparseParams:
    """Untuned choice: 16x4 -> outputs, 8 rows of X per tile; 4x4/1x4 -> tokens, 8-16
    accumulators; the block loop split into accumulator sets when few rows are live."""
    parts = max(1, num_threads)
    r = block_rows(spec.fmt)
    if r == 16:
        return _with_split(spec, SparseParams("outputs", 8, parts))
    return _with_split(spec, SparseParams("tokens", 2 if r == 4 else 8, parts))


def candidates(spec: SparseSpec, num_threads: int) -> list[SparseParams]:
    """Search space, default first: accumulators <= 28 of 32 zmm (<= 12 of 16 below AVX-512),
    counting the split sets."""
    parts = max(1, num_threads)
    r = block_rows(spec.fmt)
    lanes = LANES[spec.isa]
    cap = 28 if lanes == 16 else 12
    out = [default_params(spec, num_threads)]
    pts = []
    if r == 16:
        pts += [("outputs", mr) for mr in (2, 4, 8, 12, 16, 24)]
    pts += [("tokens", mt) for mt in (1, 2, 3, 4, 6, 8)]
    for form, mr in pts:
        e = effective_params(spec, SparseParams(form, mr, parts))
        for split in (1, 2, 4, 8):
            q = SparseParams(e.form, e.mr, e.parts, split)
            c = _chains(spec, q)
            if c * split <= cap and (split == 1 or c < 8) and q not in out:
                out.append(q)
    return out[:16]
