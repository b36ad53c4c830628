"""im2col into GEMM panels: (Bt, C, H, W) -> (Bt, NB, C*KH*KW, NR), the B operand of
convolution-as-GEMM.

Row order is (c, kh, kw), matching ``weight.reshape(Cout, Cin/groups*KH*KW)`` so that group g
reads rows [g*K, (g+1)*K). Output pixels n = oh*Wo + ow are cut into panels of NR (the GEMM's
vector tile): panel nb holds pixels [nb*NR, nb*NR + NR) for all rows, contiguously, so one
GEMM tile reads one contiguous block. Padding (also asymmetric) and dilation are resolved
here; out-of-image taps and pixels past the end read a clamped (always valid) address and
select 0, keeping the loops branch free.
"""
from __future__ import annotations

from .tvmscript import parse_prim_func


def im2col_source(batch, C, H, W, KH, KW, stride, padding, dilation, Ho, Wo, nr, symbol) -> str:
    sh, sw = stride
    pt, pl = padding[0], padding[1]
    dh, dw = dilation
    R, N = C * KH * KW, Ho * Wo
    NB = -(-N // nr)
    # index expressions inline (a TVMScript assignment would cost a workspace allocation)
    b, nb = (f"(t // {NB})" if batch > 1 else "0"), f"(t % {NB})"
    n = f"({nb} * {nr} + v)"
    c, kh, kw = f"(r // {KH * KW})", f"(r // {KW} % {KH})", f"(r % {KW})"
    ih = f"({n} // {Wo} * {sh} + {kh} * {dh} - {pt})"
    iw = f"({n} % {Wo} * {sw} + {kw} * {dw} - {pl})"
    return f"""
@T.prim_func
def main(X: T.Buffer(({batch}, {C}, {H}, {W}), "float32"), Col: T.Buffer(({batch}, {NB}, {R}, {nr}), "float32")):
    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "spdy.kernel": "im2col"}})
    for t in T.parallel({batch * NB}):
        for r in range({R}):
            for v in range({nr}):
                Col[{b}, {nb}, r, v] = T.if_then_else(
                    {n} < {N} and {ih} >= 0 and {ih} < {H} and {iw} >= 0 and {iw} < {W},
                    X[{b}, {c}, T.min(T.max({ih}, 0), {H - 1}), T.min(T.max({iw}, 0), {W - 1})],
                    T.float32(0))
"""


def make_im2col(batch, C, H, W, KH, KW, stride, padding, dilation, Ho, Wo, nr, symbol="main"):
    return parse_prim_func(im2col_source(batch, C, H, W, KH, KW, stride, padding, dilation, Ho, Wo, nr, symbol))
