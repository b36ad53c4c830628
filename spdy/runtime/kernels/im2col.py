"""im2col into GEMM panels: (Bt, C, H, W) -> (Bt, NB, C*KH*KW, NR), the B operand of
convolution-as-GEMM.

Row order is (c, kh, kw), matching ``weight.reshape(Cout, Cin/groups*KH*KW)`` so that group g
reads rows [g*K, (g+1)*K). Output pixels n = oh*Wo + ow are cut into panels of NR (the GEMM's
vector tile): panel nb holds pixels [nb*NR, nb*NR + NR) for all rows, contiguously, so one
GEMM tile reads one contiguous block. Padding (also asymmetric) and dilation are resolved
in a separate padding pass, so the gather has no bounds checks; pixels past the end of the
last panel repeat the last pixel (the GEMM never stores them).
"""
from __future__ import annotations

from .tvmscript import parse_prim_func


def pad_source(batch, C, H, W, padding, symbol) -> str:
    """Zero padding (top, left, bottom, right) as its own pass: the gather after it then
    has no bounds checks, which lets LLVM vectorize strided taps (a select per element kept
    stride-2 im2col scalar and 20x slower)."""
    pt, pl, pb, pr = padding
    Hp, Wp = H + pt + pb, W + pl + pr
    b, c = (f"(t // {C})" if batch > 1 else "0"), f"(t % {C})"
    return f"""
@T.prim_func
def main(X: T.Buffer(({batch}, {C}, {H}, {W}), "float32"), Xp: T.Buffer(({batch}, {C}, {Hp}, {Wp}), "float32")):
    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, "spdy.kernel": "pad"}})
    for t in T.parallel({batch * C}):
        for h in range({Hp}):
            for w in range({Wp}):
                Xp[{b}, {c}, h, w] = T.if_then_else(
                    h >= {pt} and h < {pt + H} and w >= {pl} and w < {pl + W},
                    X[{b}, {c}, T.min(T.max(h - {pt}, 0), {H - 1}), T.min(T.max(w - {pl}, 0), {W - 1})],
                    T.float32(0))
"""


def make_pad(batch, C, H, W, padding, symbol="main"):
    return parse_prim_func(pad_source(batch, C, H, W, padding, symbol))


def split_width(Wp: int, sw: int) -> int:
    """Columns per phase of a padded row split by column parity mod `sw`."""
    return -(-Wp // sw)


def pad_split_source(batch, C, H, W, padding, sw, symbol) -> str:
    """Zero padding with each row split into its `sw` column phases: Xs[b, c, h, ph, q] is
    padded column q*sw + ph. A conv of column stride sw then reads, for every tap, a
    contiguous run of one phase (output column ow, tap column x = ow*sw + k: phase k % sw,
    index ow + k // sw), so a strided depthwise conv runs as the direct GEMM with no im2col.
    """
    pt, pl, pb, pr = padding
    Hp, Wp = H + pt + pb, W + pl + pr
    Wq = split_width(Wp, sw)
    b, c = (f"(t // {C})" if batch > 1 else "0"), f"(t % {C})"
    return f"""
@T.prim_func
def main(X: T.Buffer(({batch}, {C}, {H}, {W}), "float32"), Xs: T.Buffer(({batch}, {C}, {Hp}, {sw}, {Wq}), "float32")):
    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, "spdy.kernel": "pad"}})
    for t in T.parallel({batch * C}):
        for h in range({Hp}):
            for ph in range({sw}):
                for q in range({Wq}):
                    Xs[{b}, {c}, h, ph, q] = T.if_then_else(
                        h >= {pt} and h < {pt + H} and q * {sw} + ph >= {pl} and q * {sw} + ph < {pl + W},
                        X[{b}, {c}, T.min(T.max(h - {pt}, 0), {H - 1}), T.min(T.max(q * {sw} + ph - {pl}, 0), {W - 1})],
                        T.float32(0))
"""


def make_pad_split(batch, C, H, W, padding, sw, symbol="main"):
    return parse_prim_func(pad_split_source(batch, C, H, W, padding, sw, symbol))


def im2col_offsets(Ho, Wo, Wp, stride, nr):
    """Offset of each output pixel's top-left tap in a padded channel plane, padded to whole
    panels with 0 (a valid address; those slots are never read by the GEMM)."""
    import numpy as np
    N = Ho * Wo
    NB = -(-N // nr)
    oh, ow = np.divmod(np.arange(N), Wo)
    off = np.zeros(NB * nr, dtype="int32")
    off[:N] = oh * stride[0] * Wp + ow * stride[1]
    return off


def im2col_source(batch, C, H, W, KH, KW, stride, dilation, Ho, Wo, nr, symbol) -> str:
    """Gather from an already padded input (H, W include the padding), flattened per channel.

    The pixel -> input offset comes from a small int32 table (im2col_offsets): computing it
    with div/mod by Wo per element kept strided gathers scalar and ~20x slower. One task per
    (image, panel) writes its panel contiguously.
    """
    dh, dw = dilation
    R, N = C * KH * KW, Ho * Wo
    NB = -(-N // nr)
    b, nb = (f"(t // {NB})" if batch > 1 else "0"), f"(t % {NB})"
    c, kh, kw = f"(r // {KH * KW})", f"(r // {KW} % {KH})", f"(r % {KW})"
    return f"""
@T.prim_func
def main(X: T.Buffer(({batch}, {C}, {H * W}), "float32"), Off: T.Buffer(({NB * nr},), "int32"),
         Col: T.Buffer(({batch}, {NB}, {R}, {nr}), "float32")):
    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, "spdy.kernel": "im2col"}})
    for t in T.parallel({batch * NB}):
        for r in range({R}):
            for v in range({nr}):
                Col[{b}, {nb}, r, v] = X[{b}, {c}, {kh} * {dh * W} + {kw} * {dw} + Off[{nb} * {nr} + v]]
"""


def make_im2col(batch, C, H, W, KH, KW, stride, dilation, Ho, Wo, nr, symbol="main"):
    return parse_prim_func(im2col_source(batch, C, H, W, KH, KW, stride, dilation, Ho, Wo, nr, symbol))
