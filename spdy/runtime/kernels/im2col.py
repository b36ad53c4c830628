"""im2col: (Bt, C, H, W) -> (Bt, C*KH*KW, Ho*Wo), the B operand of convolution-as-GEMM.

Row order is (c, kh, kw), matching ``weight.reshape(Cout, Cin/groups*KH*KW)`` so that group g
reads rows [g*K, (g+1)*K). Padding (also asymmetric) and dilation are resolved here, so the
GEMM never branches. Out-of-image taps read a clamped (always valid) address and select 0,
which keeps the inner loop free of data-dependent branches.
"""
from __future__ import annotations

from .tvmscript import parse_prim_func


def im2col_source(batch, C, H, W, KH, KW, stride, padding, dilation, Ho, Wo, symbol) -> str:
    sh, sw = stride
    pt, pl = padding[0], padding[1]
    dh, dw = dilation
    R = C * KH * KW
    return f"""
@T.prim_func
def main(X: T.Buffer(({batch}, {C}, {H}, {W}), "float32"), Col: T.Buffer(({batch}, {R}, {Ho * Wo}), "float32")):
    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "spdy.kernel": "im2col"}})
    for t in T.parallel({batch * R}):
        b = t // {R}
        r = t % {R}
        c = r // {KH * KW}
        kh = r // {KW} % {KH}
        kw = r % {KW}
        for oh in range({Ho}):
            for ow in range({Wo}):
                Col[b, r, oh * {Wo} + ow] = T.if_then_else(
                    oh * {sh} + kh * {dh} >= {pt} and oh * {sh} + kh * {dh} < {pt + H}
                    and ow * {sw} + kw * {dw} >= {pl} and ow * {sw} + kw * {dw} < {pl + W},
                    X[b, c, T.min(T.max(oh * {sh} + kh * {dh} - {pt}, 0), {H - 1}),
                      T.min(T.max(ow * {sw} + kw * {dw} - {pl}, 0), {W - 1})],
                    T.float32(0))
"""


def make_im2col(batch, C, H, W, KH, KW, stride, padding, dilation, Ho, Wo, symbol="main"):
    return parse_prim_func(im2col_source(batch, C, H, W, KH, KW, stride, padding, dilation, Ho, Wo, symbol))
