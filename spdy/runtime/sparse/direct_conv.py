"""Direct (im2col-free) block-sparse conv: the sparse GEMM reads its B rows from the input.

Why: with 90% of the weights gone, writing an im2col matrix (C*KH*KW x OH*OW floats) costs
more than the sparse GEMM that reads it (measured: 17 ms of im2col-bound time for a
64->64 3x3 conv at 56x56 whose dense torch conv takes 1.4 ms). Here the input is copied
once into zero-padded *phase planes* and every nonzero block reads a contiguous vector:

  Xph[n, c, a, b, y, x] = Xpad[n, c, y*SH + a, x*SW + b]       a < SH, b < SW (stride phases)
  plane width  WS = OW + (KW-1)*DW // SW,  height HS = OH + (KH-1)*DH // SH
  output position p' = oy*WS + ox  (a "pitched" index: WS-OW junk columns per row)
  tap (c, i, j) of output p' reads Xph_flat[koff(c, i, j) + p'] with
  koff = (c*SH*SW + ((i*DH) % SH)*SW + (j*DW) % SW) * PS + ((i*DH) // SH)*WS + (j*DW) // SW

so the tile loop is the same vectorized BR x QT FMA loop as the GEMM in templates.py, with
`koff[j]` (a constant per nonzero block, computed here with numpy) instead of a B row index.
Lanes that fall on junk columns or past the last row are computed and not stored. Each plane
has QT floats of zero slack so the last tile never reads out of bounds.
"""
from __future__ import annotations

import numpy as np

from .templates import ConvGeom, Params, _core_with, _epilogue


def plane_dims(g: ConvGeom, qt: int) -> tuple[int, int, int]:
    """(HS, WS, PS): phase-plane height, width, and flat size with slack."""
    sh, sw = g.stride
    dh, dw = g.dilation
    hs = g.oh + (g.kh - 1) * dh // sh
    ws = g.ow + (g.kw - 1) * dw // sw
    return hs, ws, hs * ws + qt


def tap_offsets(indices: np.ndarray, g: ConvGeom, qt: int) -> np.ndarray:
    """koff for every nonzero block column k = c*KH*KW + i*KW + j (int32)."""
    sh, sw = g.stride
    dh, dw = g.dilation
    _, ws, ps = plane_dims(g, qt)
    k = np.asarray(indices, np.int64)
    c, r = np.divmod(k, g.kh * g.kw)
    i, j = np.divmod(r, g.kw)
    plane = c * sh * sw + ((i * dh) % sh) * sw + (j * dw) % sw
    off = plane * ps + ((i * dh) // sh) * ws + (j * dw) // sw
    if off.size and off.max() >= 2 ** 31:
        raise ValueError("input too large for int32 tap offsets")
    return off.astype(np.int32)


def direct_conv_source(g: ConvGeom, br: int, nnzb: int, nwork: int, p: Params, *,
                       bias: bool, residual: bool, act: str) -> str:
    """TVMScript for Y = act(conv2d(X, W) + bias + residual) with W's taps as koff constants."""
    from .templates import _args
    qt = p.qt
    sh, sw = g.stride
    pt, pl, _, _ = g.padding
    hs, ws, ps = plane_dims(g, qt)
    oh, ow = g.oh, g.ow
    npp = oh * ws                         # pitched positions per image
    tpi = -(-npp // qt)
    nplanes = g.c * sh * sw
    nrows = -(-g.o // br)
    y_shape = (g.n, g.o, oh, ow)
    args = _args((g.n, g.c, g.h, g.w), nnzb, br, nrows, nwork, p.parts, g.o, bias, residual, y_shape)
    args = args.replace("indices: T.Buffer", "koff: T.Buffer")
    src = f'''
@T.prim_func
def kernel({args}):
    T.func_attr({{"tir.noalias": True, "global_symbol": SYMBOL}})
    Yf = T.decl_buffer(({g.n}, {g.o}, {oh * ow}), "float32", data=Y.data)
'''
    if residual:
        src += f'    Rf = T.decl_buffer(({g.n}, {g.o}, {oh * ow}), "float32", data=res.data)\n'
    # phase planes: one parallel pass over (image, channel); zeros, then the interior copied
    # with constant bounds per phase (contiguous rows for stride 1, so LLVM vectorizes)
    prep = [f"    Xph = T.alloc_buffer(({g.n * nplanes * ps},), \"float32\")",
            f"    for nc in T.parallel({g.n * g.c}):",
            f"        for i in range({sh * sw * ps}):",
            f"            Xph[nc * {sh * sw * ps} + i] = T.float32(0)"]
    for a in range(sh):
        y0, y1 = max(0, -(-(pt - a) // sh)), min(hs, -(-(g.h + pt - a) // sh))
        for b in range(sw):
            x0, x1 = max(0, -(-(pl - b) // sw)), min(ws, -(-(g.w + pl - b) // sw))
            if y1 <= y0 or x1 <= x0:
                continue
            base = f"nc * {sh * sw * ps} + {(a * sw + b) * ps}"
            prep += [f"        for y in range({y1 - y0}):",
                     f"            for x in range({x1 - x0}):",
                     f"                Xph[{base} + (y + {y0}) * {ws} + x + {x0}] = X[nc // {g.c}, nc % {g.c}, "
                     f"(y + {y0}) * {sh} + {a - pt}, (x + {x0}) * {sw} + {b - pl}]"]
    src += "\n".join(prep) + "\n"
    ocol = f"wrow[w] * {br} + v"
    pp = f"(tile % {tpi}) * {qt} + q"
    ind = " " * 20
    lines = [f"                for v in range({br}):"]
    if g.o % br:
        lines.append(f"{ind}if {ocol} < {g.o}:")
        ind += "    "
    if ws == ow:
        # no junk columns: full tiles store vectors into Y, the last one is guarded
        z = "acc[v, q]"
        if bias:
            z += f" + bias[{ocol}]"
        if residual:
            z += f" + Rf[tile // {tpi}, {ocol}, {pp}]"
        st = [f"acc[v, q] = {z}", f"Yf[tile // {tpi}, {ocol}, {pp}] = {_epilogue('acc[v, q]', act)}"]
        if npp % qt:
            lines += [f"{ind}if tile % {tpi} < {tpi - 1}:", f"{ind}    for q in T.vectorized({qt}):"]
            lines += [f"{ind}        {x}" for x in st]
            lines += [f"{ind}else:", f"{ind}    for q in range({npp % qt}):"]
            lines += [f"{ind}        {x}" for x in st]
        else:
            lines += [f"{ind}for q in T.vectorized({qt}):"] + [f"{ind}    {x}" for x in st]
        post = ""
    else:
        # junk columns: whole tiles go to a pitched staging buffer (vector stores, bias and,
        # without residual, the activation applied); a compaction pass drops the junk
        z = "acc[v, q]" + (f" + bias[{ocol}]" if bias else "")
        fin = "acc[v, q]" if residual else _epilogue("acc[v, q]", act)
        lines += [f"{ind}for q in T.vectorized({qt}):",
                  f"{ind}    acc[v, q] = {z}",
                  f"{ind}    Yp[tile // {tpi}, {ocol}, {pp}] = {fin}"]
        src += f'    Yp = T.alloc_buffer(({g.n}, {nrows * br}, {tpi * qt}), "float32")\n'
        val = f"Yp[no // {g.o}, no % {g.o}, oy * {ws} + ox]"
        if residual:
            val = _epilogue(f"{val} + Rf[no // {g.o}, no % {g.o}, oy * {ow} + ox]", act)
        post = f'''    for no in T.parallel({g.n * g.o}):
        for oy in range({oh}):
            for ox in range({ow}):
                Yf[no // {g.o}, no % {g.o}, oy * {ow} + ox] = {val}
'''
    store = "\n".join(lines) + "\n"
    lets = f"                tbase: T.let = (tile // {tpi}) * {nplanes * ps} + (tile % {tpi}) * {qt}\n"
    return src + _core_with(br, qt, p.parts, store, "Xph[tbase + koff[j] + q]", lets) + post
