"""The register-tiled GEMM template behind Linear, convolution (after im2col) and batched matmul.

C[b, g*M + m, n] = epilogue( sum_k A[.., m, k] * B[.., k, n] ), vectorized over n.

Each parallel task computes an MR x NR tile of C in an accumulator kept in registers
(default scope: ``scope="local"`` goes through a workspace allocator and loses registers);
per k it broadcasts MR scalars of A and multiplies them with one NR-wide vector of B.
Operands come in two kinds:
  A: "act"   activation, buffer (Bt, M, K) row-major                   (Linear, bmm)
     "const" packed constant, (G, MB, K, MR): the MR scalars of a k contiguous   (conv weights)
  B: "act"   activation, buffer (Bt, G*K, N) row-major                 (im2col'd conv, bmm)
     "packed" constant, (G, NB, K, NR): one contiguous NR vector per k (Linear weights)
     "panel"  activation already in panels, (Bt, NB, G*K, NR) (written so by im2col): a tile's
              B panel is contiguous, so it streams from L1/L2 instead of K strided rows
     "direct" the padded conv input (Bt, G*Cg, Hp, Wp) of a stride-1 conv: the NR lanes are
              NR consecutive output pixels of one row, i.e. a contiguous run of an input row
              per tap, so no im2col copy at all; with a column stride sw > 1 (depthwise convs)
              the input comes split into column phases, (Bt, G*Cg, Hp, sw, ceil(Wp/sw))
              (im2col.pad_split_source), and each tap still reads a contiguous run
Tails (M % MR, N % NR) get their own tile bodies with smaller static sizes, so no masking,
no padding of activations, and the full tiles stay branch free.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np

from .im2col import split_width
from .tvmscript import activation_expr, parse_prim_func


@dataclass(frozen=True)
class GemmSpec:
    """What to compute (shapes, operand kinds, epilogue); part of the op signature."""
    M: int
    N: int
    K: int
    batch: int = 1          # Bt: independent problems sharing nothing but the constant operand
    groups: int = 1         # G: conv groups; constant operands hold one matrix per group
    a: str = "act"          # "act" | "const"
    b: str = "packed"       # "act" | "packed" | "panel"
    bias: str = "none"      # "none" | "m" (per output row, conv channels) | "n" (per column, Linear)
    residual: bool = False
    activation: str = "none"
    # b == "direct": convolution read straight from the padded input, no im2col.
    # (Cg, KH, KW, dh, dw, Ho, Wo, Hp, Wp, sh, sw); N = Ho*Wo, K = Cg*KH*KW, tiles never cross a row.
    conv: tuple = ()

    def signature(self) -> str:
        return "gemm:" + ",".join(f"{k}={v}" for k, v in asdict(self).items())


@dataclass(frozen=True)
class GemmParams:
    """How to compute it: the tunable schedule parameters."""
    mr: int = 4             # rows of A per tile (broadcast scalars)
    nr: int = 32            # columns per tile (vector lanes; multiple of 16 for AVX-512)
    order: str = "nm"       # parallel tile order: "nm" = m innermost (B panel reuse), "mn" = n innermost
    ku: int = 1             # unroll factor of the k loop (1 = leave it to LLVM)
    vec: str = "n"          # vectorized axis: "n" (columns) or "m" (rows of a packed constant A,
                            # for convs with few output pixels, e.g. 7x7: mr lanes, nr unrolled)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "GemmParams":
        return GemmParams(**d)


def effective_params(spec: GemmSpec, p: GemmParams) -> GemmParams:
    """Clamp tile sizes to the problem (a 7-column conv needs no 32-lane tile)."""
    mr = max(1, min(p.mr, spec.M))
    nr = max(1, min(p.nr, spec.conv[6] if spec.b == "direct" else spec.N))
    ku = 1 if spec.b == "direct" else max(1, min(p.ku, spec.K))
    vec = p.vec if spec.a == "const" else "n"
    return GemmParams(mr=mr, nr=nr, order=p.order, ku=ku, vec=vec)


def pack_a(a: np.ndarray, groups: int, mr: int) -> np.ndarray:
    """(G*M, K) constant -> (G, MB, K, MR), zero rows in the tail block."""
    gm, k = a.shape
    m = gm // groups
    mb = -(-m // mr)
    out = np.zeros((groups, mb * mr, k), dtype="float32")
    out[:, :m, :] = a.reshape(groups, m, k)
    return np.ascontiguousarray(out.reshape(groups, mb, mr, k).transpose(0, 1, 3, 2))


def pack_b(b: np.ndarray, groups: int, nr: int) -> np.ndarray:
    """(G, K, N) constant (N contiguous) -> (G, NB, K, NR), zero columns in the tail block."""
    g, k, n = b.shape
    nb = -(-n // nr)
    out = np.zeros((g, k, nb * nr), dtype="float32")
    out[:, :, :n] = b
    return np.ascontiguousarray(out.reshape(g, k, nb, nr).transpose(0, 2, 1, 3))


def buffer_shapes(spec: GemmSpec, p: GemmParams) -> dict[str, tuple[int, ...]]:
    """Shapes of the kernel's parameters, in call order: A, B, [bias], [residual], C."""
    s, G = spec, spec.groups
    MB, NB = -(-s.M // p.mr), -(-s.N // p.nr)
    if s.b == "direct":
        Cg, KH, KW, dh, dw, Ho, Wo, Hp, Wp, sh, sw = s.conv
        b = (s.batch, G * Cg, Hp, Wp) if sw == 1 else (s.batch, G * Cg, Hp, sw, split_width(Wp, sw))
        return _finish_shapes(s, {"A": (G, MB, s.K, p.mr), "B": b})
    shapes = {
        "A": (s.batch, s.M, s.K) if s.a == "act" else (G, MB, s.K, p.mr),
        "B": {"act": (s.batch, G * s.K, s.N), "packed": (G, NB, s.K, p.nr),
              "panel": (s.batch, NB, G * s.K, p.nr)}[s.b],
    }
    return _finish_shapes(s, shapes)


def _finish_shapes(s: GemmSpec, shapes: dict) -> dict:
    G = s.groups
    if s.bias == "m":
        shapes["bias"] = (G * s.M,)
    elif s.bias == "n":
        shapes["bias"] = (s.N,)
    if s.residual:
        shapes["R"] = (s.batch, G * s.M, s.N)
    shapes["C"] = (s.batch, G * s.M, s.N)
    return shapes


def gemm_source(spec: GemmSpec, params: GemmParams, symbol: str) -> str:
    s, p = spec, effective_params(spec, params)
    if s.a == "act" and s.groups != 1:
        raise ValueError("activation A with groups is not supported")
    MR, NR = p.mr, p.nr
    MBf, MRt = divmod(s.M, MR)
    direct = s.b == "direct"
    if direct:
        Cg, KH, KW, dh, dw, Ho, Wo, Hp, Wp, sh, sw = s.conv
        NBf, NRt = divmod(Wo, NR)       # tiles per output row
        NBw = NBf + (NRt > 0)
        NB = Ho * NBw
    else:
        NBf, NRt = divmod(s.N, NR)
        NB = NBf + (NRt > 0)
    MB = MBf + (MRt > 0)
    shapes = buffer_shapes(s, p)
    args = ", ".join(f'{n}: T.Buffer({shp}, "float32")' for n, shp in shapes.items())

    # Tile coordinates are written inline as expressions of the parallel index t: a TVMScript
    # assignment (``mb = t % MB``) becomes a 4-byte workspace allocation per task in TVM 0.27.
    IN, OUT = (MB, NB) if p.order == "nm" else (NB, MB)
    inner_e, outer_e = f"(t % {IN})", f"(t // {IN} % {OUT})"
    E = {"mb": inner_e if p.order == "nm" else outer_e, "nb": outer_e if p.order == "nm" else inner_e,
         "g": f"(t // {IN * OUT} % {s.groups})" if s.groups > 1 else "0",
         "b": f"(t // {IN * OUT * s.groups})" if s.batch > 1 else "0"}
    E["m0"], E["n0"] = f"{E['mb']} * {MR}", f"{E['nb']} * {NR}"
    if direct:  # nb = (output row, tile within the row); n0 = first output pixel of the tile
        E["oh"], E["owb"] = f"({E['nb']} // {NBw})", f"({E['nb']} % {NBw})"
        E["n0"] = f"({E['oh']} * {Wo} + {E['owb']} * {NR})"
    b_, g_, mb_, nb_, m0_, n0_ = (E[k] for k in ("b", "g", "mb", "nb", "m0", "n0"))
    ntile_ = E["owb"] if direct else nb_   # the index compared against NBf for the N tail

    def a_load(i: str, k: str) -> str:
        return f"A[{b_}, {m0_} + {i}, {k}]" if s.a == "act" else f"A[{g_}, {mb_}, {k}, {i}]"

    def b_load(k: str, v: str) -> str:
        if direct:  # k is "ci, kh, kw" here
            ci, kh, kw = k.split(",")
            row = f"{E['oh']} + {kh} * {dh}" if sh == 1 else f"{E['oh']} * {sh} + {kh} * {dh}"
            if sw == 1:
                return f"B[{b_}, {g_} * {Cg} + {ci}, {row}, {E['owb']} * {NR} + {kw} * {dw} + {v}]"
            return (f"B[{b_}, {g_} * {Cg} + {ci}, {row}, {kw} * {dw} % {sw}, "
                    f"{E['owb']} * {NR} + {kw} * {dw} // {sw} + {v}]")
        if s.b == "panel":
            return f"B[{b_}, {nb_}, {g_} * {s.K} + {k}, {v}]"
        return f"B[{b_}, {g_} * {s.K} + {k}, {n0_} + {v}]" if s.b == "act" else f"B[{g_}, {nb_}, {k}, {v}]"

    vec_m = p.vec == "m"
    mi, ni = ("v", "i") if vec_m else ("i", "v")   # loop vars holding the m and n offsets

    def tile(mr: int, nr: int, ind: str) -> list[str]:
        L = []
        w = ind
        mr, nr = (nr, mr) if vec_m else (mr, nr)   # now: mr = unrolled extent, nr = vector lanes
        L.append(f"{w}acc = T.alloc_buffer(({mr}, {nr}), \"float32\")")
        L.append(f"{w}for i in T.unroll({mr}):")
        L.append(f"{w}    for v in T.vectorized({nr}):")
        L.append(f"{w}        acc[i, v] = T.float32(0)")
        def body(kx: str, bk: str | None = None) -> list[str]:
            return [f"for i in T.unroll({mr}):",
                    f"    for v in T.vectorized({nr}):",
                    f"        acc[i, v] = acc[i, v] + {a_load(mi, kx)} * {b_load(bk or kx, ni)}"]
        ku = p.ku
        if direct:
            L.append(f"{w}for ci in range({Cg}):")
            L.append(f"{w}    for kh in range({KH}):")
            L.append(f"{w}        for kw in range({KW}):")
            L += [w + "            " + ln for ln in body(f"ci * {KH * KW} + kh * {KW} + kw", "ci,kh,kw")]
        elif ku > 1:
            kf, kt = divmod(s.K, ku)
            L.append(f"{w}for ko in range({kf}):")
            L.append(f"{w}    for kk in T.unroll({ku}):")
            L += [w + "        " + ln for ln in body(f"ko * {ku} + kk")]
            if kt:
                L.append(f"{w}for kr in range({kt}):")
                L += [w + "    " + ln for ln in body(f"{kf * ku} + kr")]
        else:
            L.append(f"{w}for k in range({s.K}):")
            L += [w + "    " + ln for ln in body("k")]
        # epilogue
        L.append(f"{w}for i in T.unroll({mr}):")
        L.append(f"{w}    for v in T.vectorized({nr}):")
        row = f"{g_} * {s.M} + {m0_} + {mi}"
        terms = ["acc[i, v]"]
        if s.bias == "m":
            terms.append(f"bias[{row}]")
        elif s.bias == "n":
            terms.append(f"bias[{n0_} + {ni}]")
        if s.residual:
            terms.append(f"R[{b_}, {row}, {n0_} + {ni}]")
        if s.activation == "none" or len(terms) == 1:
            pre = " + ".join(terms)
            if s.activation != "none":
                L.append(f"{w}        C[{b_}, {row}, {n0_} + {ni}] = {activation_expr(s.activation, pre)}")
            else:
                L.append(f"{w}        C[{b_}, {row}, {n0_} + {ni}] = {pre}")
        else:
            L.append(f"{w}        acc[i, v] = {' + '.join(terms)}")
            L.append(f"{w}        C[{b_}, {row}, {n0_} + {ni}] = {activation_expr(s.activation, 'acc[i, v]')}")
        return L

    lines = [
        "@T.prim_func",
        f"def main({args}):",
        f'    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, "spdy.kernel": "gemm"}})',
        f"    for t in T.parallel({s.batch * s.groups * MB * NB}):",
    ]
    w = "        "
    cases = []
    for mtail in ([False, True] if MRt else [False]):
        for ntail in ([False, True] if NRt else [False]):
            if (not mtail and MBf == 0) or (not ntail and NBf == 0):
                continue
            cases.append((mtail, ntail))
    if len(cases) == 1:
        mtail, ntail = cases[0]
        lines += tile(MRt if mtail else MR, NRt if ntail else NR, w)
    else:
        for idx, (mtail, ntail) in enumerate(cases):
            cond = f"{mb_} {'>=' if mtail else '<'} {MBf} and {ntile_} {'>=' if ntail else '<'} {NBf}"
            head = "if" if idx == 0 else ("else" if idx == len(cases) - 1 else "elif")
            lines.append(f"{w}else:" if head == "else" else f"{w}{head} {cond}:")
            lines += tile(MRt if mtail else MR, NRt if ntail else NR, w + "    ")
    return "\n".join(lines) + "\n"


def make_gemm(spec: GemmSpec, params: GemmParams, symbol: str = "main"):
    """The PrimFunc for (spec, params), with ``global_symbol`` = symbol."""
    return parse_prim_func(gemm_source(spec, params, symbol))


def _n_tile(n: int) -> int:
    """Unrolled pixel count for vec="m": a divisor of n in [4, 14] if any, else 8."""
    return next((d for d in range(14, 3, -1) if n % d == 0), 8)


def _few_pixels(spec: GemmSpec) -> int:
    """Output pixels per tile row when they are too few to fill 16-lane vectors, else 0."""
    if spec.a != "const":
        return 0
    if spec.b == "direct":
        return spec.conv[6] if spec.conv[6] < 16 else 0
    return spec.N if spec.N < 256 else 0


def _channel_lanes(spec: GemmSpec) -> bool:
    """Output channels as vector lanes (vec="m") suit a packed conv weight whose rows per group
    are whole 16-lane vectors; depthwise and narrow grouped convs keep pixels as lanes. Other
    counts would leave a tile of 8 or 24 lanes: a 24-channel 3x3 conv at 28x28 took 0.34 ms
    with 24 lanes against 0.03 ms with 16 (and CHEX widths are any count)."""
    return spec.a == "const" and spec.M % 16 == 0


def default_params(spec: GemmSpec) -> GemmParams:
    """Good untuned parameters.

    Convs read straight from the padded input, and convs with few output pixels (7x7, 14x14),
    take output channels as vector lanes: 32 channels x 7 pixels = 14 zmm accumulators, the
    weight panel of a channel block read as whole vectors and the pixels broadcast. Order "mn"
    walks every pixel tile of one channel block before the next, so each block's weights
    (K x 32 floats) stay in L1/L2 while the pixels stream; "nm" re-streamed a 512x512 3x3
    conv's 9 MB of weights once per output row from L3, and ran at half the speed
    (ResNet-18 layer4 3x3 on AVX-512: 1.17 -> 0.64 ms, layer1 3x3 0.76 -> 0.53 ms).
    Other convs and Linear layers take 16-lane pixel/column vectors."""
    if _channel_lanes(spec) and (spec.b == "direct" or _few_pixels(spec)):
        row = spec.conv[6] if spec.b == "direct" else spec.N
        nr = 7 if row % 7 == 0 or row > 14 else _n_tile(row)
        return GemmParams(mr=32 if spec.M % 32 == 0 else 16, nr=min(nr, row), order="mn", vec="m")
    if spec.b == "direct":
        # 16 lanes = one zmm; widths like 28 or 56 compile to masked/split vectors (2-3x slower)
        return GemmParams(mr=8, nr=16, order="nm")
    if spec.M <= 2:
        return GemmParams(mr=spec.M, nr=64, order="nm")
    if spec.a == "const":   # 1x1 convs: 14 accumulators beat 8 by 5-10% (ResNet-50, 1 and 2 threads)
        return GemmParams(mr=7, nr=32, order="nm")
    return GemmParams(mr=4, nr=32, order="nm")


def candidate_params(spec: GemmSpec) -> list[GemmParams]:
    """The tuner's modest search space (<= 16 points), default first."""
    out = [default_params(spec)]

    def add(mr, nr, order, vec="n"):
        e = effective_params(spec, GemmParams(mr=mr, nr=nr, order=order, vec=vec))
        if e not in out and e.mr * e.nr <= 255:
            out.append(e)
    if _channel_lanes(spec):
        for mr, nr, order in [(32, 7, "mn"), (16, 14, "mn"), (32, 6, "mn"), (16, 12, "mn"),
                              (32, 4, "mn"), (32, 7, "nm"), (16, 14, "nm")]:
            add(mr, nr, order, "m")
    if spec.b == "direct":
        for mr, nr in [(8, 16), (12, 16), (6, 16), (4, 32), (8, 8)]:
            for order in ("nm", "mn"):
                add(mr, nr, order)
        return out[:16]
    # acc = mr*nr floats must stay <= 1 KiB: larger buffers leave the stack for the workspace
    # allocator (a call per task) in TVM's lowering.
    for mr, nr in [(4, 32), (6, 32), (7, 32), (8, 16), (4, 48), (2, 64), (3, 64), (12, 16), (6, 16)]:
        for order in ("nm", "mn"):
            add(mr, nr, order)
    return out[:16]
