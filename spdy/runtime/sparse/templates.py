"""TVMScript sources of the block-sparse kernels, generated per shape and parameters.

Why generated text: a kernel's argument list depends on the layer (bias and residual are
optional, tails need guards only when present); writing one Python function per
combination would multiply code, so the source is assembled here and parsed with
`tvm.script.parser.parse`. Every size is a compile-time constant.

One formulation serves Linear and Conv2d ("column-vector" GEMM):
    Z[R, Q] = W[R, K] @ B[K, Q]     W in BSR (BR x 1 blocks), B dense
A register tile is one block row (BR output channels) x QT columns, vectorized over QT;
for each nonzero block (k, w[0..BR)) it does BR vector FMAs with one loaded B row, so the
same code works for 16x1, 4x1 and 1x1 blocks. Linear packs X[M, K] transposed into tiles
B[TILES, K, QT] (Q = M, padded to whole tiles with zeros so the hot loop has no tail; only
stores are guarded). Conv2d reads B rows straight from the input (direct_conv.py); the
im2col variant here (Params.conv == "im2col") is kept as a reference and fallback.
Rows (output channels) are padded to whole blocks by the BSR conversion; stores skip them.
Threads: `parts` parallel iterations, each walking its list of (block row, tile range)
work items from `balance.work_list` (load balance over uneven rows).
Epilogue, fused into the store: act(z + bias[r] + residual).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Params:
    """Template parameters (searched by the tuner): columns per register tile, thread parts,
    for convs the formulation ("direct": phase planes, "im2col": packed tiles), and for
    Linear `mr` > 0 to use the row-vector kernel (rowvec.py) with MR rows of X per tile."""
    qt: int = 16
    parts: int = 2
    conv: str = "direct"
    mr: int = 0


def candidates(br: int, q: int, num_threads: int, kind: str = "linear") -> list[Params]:
    """Tile widths that keep BR x QT accumulators within the 32 AVX-512 registers.

    Wider tiles than the padded Q (columns: M for Linear, output pixels for Conv2d) mostly
    compute padding and are dropped. Convs use the direct formulation; "im2col" is kept
    as an option but not searched (it was 2-10x slower in every measured layer).
    """
    out = []
    for qt in (16, 32, 64, 128):
        if br * qt > 512:            # > 32 zmm of accumulators: spills
            continue
        if qt > 16 and qt >= 2 * q:  # mostly padding
            continue
        out.append(Params(qt, max(1, num_threads)))
    out = out or [Params(16, max(1, num_threads))]
    if kind == "conv" and num_threads > 1:
        # one part: at 90% the strided 3x3 convs of ResNet-18 ran 25% slower on two threads
        # than on one (0.19 vs 0.14 ms; the phase-plane copy stays parallel either way)
        out.append(Params(16, 1))
    if kind == "linear" and br >= 4:        # row-vector kernel: small M, or as an alternative
        out += [Params(16, max(1, num_threads), mr=mr) for mr in (1, 2, 4, 8) if mr <= max(1, q)]
    return out


def default_params(br: int, q: int, num_threads: int, kind: str = "linear") -> Params:
    """A sensible untuned choice: 8-16 vector accumulators; row vectors for a few rows of X."""
    if kind == "linear" and br >= 4 and q < 16:
        return Params(16, max(1, num_threads), mr=min(4, max(1, q)))
    qt = {16: 16, 4: 32, 1: 64}.get(br, 16)
    while qt > 16 and qt >= 2 * q:
        qt //= 2
    return Params(qt, max(1, num_threads))


def _epilogue(expr: str, act: str) -> str:
    from spdy.runtime.kernels.tvmscript import activation_expr
    return activation_expr(act, f"({expr})") if act != "none" else expr


def _core(br: int, qt: int, parts: int, store: str) -> str:
    """The sparse GEMM reading packed tiles B[tile, k, q]."""
    return _core_with(br, qt, parts, store, "B[tile, indices[j], q]")


def _core_with(br: int, qt: int, parts: int, store: str, bexpr: str, tile_lets: str = "") -> str:
    """The parallel sparse GEMM over work items; the epilogue `store` reads acc[BR, QT].

    Accumulation uses one small buffer per block row r0..r{BR-1} (QT floats each): LLVM keeps
    those in vector registers, while one BR x QT buffer of 1 KB or more goes to the heap
    workspace and every FMA then loads and stores memory (measured ~2x slower).

    `bexpr` is the B element of nonzero block j at tile column q; `tile_lets` may bind
    per-tile values (`name: T.let = ...`, 16 spaces indent) it uses. Scalars are bound with
    `T.let` (a plain `x = ...` makes a mutable local in memory and keeps the accumulators out
    of registers: measured 40x slower). Loops are written as
    `range(extent)` plus an offset: a loop whose start is loaded from a buffer that an
    outer data-dependent loop indexes was miscompiled (TVM 0.27, wrong rows computed).
    """
    regs = "".join(f"                r{v} = T.alloc_buffer(({qt},), \"float32\")\n" for v in range(br))
    init = "".join(f"                for q in T.vectorized({qt}):\n                    r{v}[q] = T.float32(0)\n"
                   for v in range(br))
    fma = "".join(f"                    for q in T.vectorized({qt}):\n"
                  f"                        r{v}[q] = r{v}[q] + data[j, {v}] * {bexpr}\n" for v in range(br))
    stage = "".join(f"                for q in T.vectorized({qt}):\n                    acc[{v}, q] = r{v}[q]\n"
                    for v in range(br))
    return f'''
    for part in T.parallel({parts}):
        acc = T.alloc_buffer(({br}, {qt}), "float32")
        for wi in range(wptr[part + 1] - wptr[part]):
            w: T.let = wptr[part] + wi
            for ti in range(wt1[w] - wt0[w]):
                tile: T.let = wt0[w] + ti
{tile_lets}{regs}{init}                for jj in range(indptr[wrow[w] + 1] - indptr[wrow[w]]):
                    j: T.let = indptr[wrow[w]] + jj
{fma}{stage}{store}'''


_HEAD = '''
@T.prim_func
def kernel({args}):
    T.func_attr({{"tir.noalias": True, "global_symbol": SYMBOL}})
'''


def _args(x_shape, nnzb, br, nrows, nwork, parts, n_out, bias, residual, y_shape) -> str:
    a = [f"X: T.Buffer({tuple(x_shape)}, \"float32\")",
         f"data: T.Buffer(({nnzb}, {br}), \"float32\")",
         f"indices: T.Buffer(({nnzb},), \"int32\")",
         f"indptr: T.Buffer(({nrows + 1},), \"int32\")",
         f"wrow: T.Buffer(({nwork},), \"int32\")",
         f"wt0: T.Buffer(({nwork},), \"int32\")",
         f"wt1: T.Buffer(({nwork},), \"int32\")",
         f"wptr: T.Buffer(({parts + 1},), \"int32\")"]
    if bias:
        a.append(f"bias: T.Buffer(({n_out},), \"float32\")")
    if residual:
        a.append(f"res: T.Buffer({tuple(y_shape)}, \"float32\")")
    a.append(f"Y: T.Buffer({tuple(y_shape)}, \"float32\")")
    return ", ".join(a)


def linear_source(x_shape, n: int, br: int, nnzb: int, nwork: int, p: Params, *,
                  bias: bool, residual: bool, act: str) -> str:
    """Y[..., N] = act(X[..., K] @ W^T + bias + residual); X rows flattened to M."""
    *lead, k = x_shape
    m = 1
    for d in lead:
        m *= d
    qt, tiles = p.qt, -(-m // p.qt)
    nrows = -(-n // br)
    y_shape = (*lead, n)
    ncol = "wrow[w] * %d + v" % br
    mrow = f"tile * {qt} + q"
    z = "acc[v, q]"
    if bias:
        z += f" + bias[{ncol}]"
    if residual:
        z += f" + Rf[{mrow}, {ncol}]"
    guard = []
    if m % qt:
        guard.append(f"{mrow} < {m}")
    if n % br:
        guard.append(f"{ncol} < {n}")
    ind = " " * 24
    # no let-binding here: a scalar let inside a vectorized loop miscompiles (TVM 0.27)
    body = f"acc[v, q] = {z}\n{ind}Yf[{mrow}, {ncol}] = {_epilogue('acc[v, q]', act)}"
    if guard:
        body = f"if {' and '.join(guard)}:\n{ind}    " + body.replace("\n", "\n    ")
    store = (f"                for v in range({br}):\n"
             f"                    for q in range({qt}):\n{ind}{body}\n")
    src = _HEAD.format(args=_args(x_shape, nnzb, br, nrows, nwork, p.parts, n, bias, residual, y_shape))
    src += f'''    Xf = T.decl_buffer(({m}, {k}), "float32", data=X.data)
    Yf = T.decl_buffer(({m}, {n}), "float32", data=Y.data)
'''
    if residual:
        src += f'    Rf = T.decl_buffer(({m}, {n}), "float32", data=res.data)\n'
    src += f'''    B = T.alloc_buffer(({tiles}, {k}, {qt}), "float32")
    for t in T.parallel({tiles}):
        for q in range({qt}):
            for kk in range({k}):
                B[t, kk, q] = T.if_then_else(t * {qt} + q < {m}, Xf[T.min(t * {qt} + q, {m - 1}), kk], T.float32(0))
'''
    return src + _core(br, qt, p.parts, store)


@dataclass(frozen=True)
class ConvGeom:
    """Shapes of one conv: input [N, C, H, W], kernel KHxKW, stride, padding (t, l, b, r), dilation."""
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]

    @property
    def oh(self) -> int:
        pt, _, pb, _ = self.padding
        return (self.h + pt + pb - self.dilation[0] * (self.kh - 1) - 1) // self.stride[0] + 1

    @property
    def ow(self) -> int:
        _, pl, _, pr = self.padding
        return (self.w + pl + pr - self.dilation[1] * (self.kw - 1) - 1) // self.stride[1] + 1


def conv_source(g: ConvGeom, br: int, nnzb: int, nwork: int, p: Params, *,
                bias: bool, residual: bool, act: str) -> str:
    """Y[N, O, OH, OW] = act(conv2d(X, W) + bias + residual), groups == 1, via im2col tiles."""
    qt = p.qt
    oh, ow = g.oh, g.ow
    npix = oh * ow
    tpi = -(-npix // qt)                  # tiles per image
    tiles = g.n * tpi
    kdim = g.c * g.kh * g.kw
    nrows = -(-g.o // br)
    y_shape = (g.n, g.o, oh, ow)
    sh, sw = g.stride
    dh, dw = g.dilation
    pt, pl, _, _ = g.padding
    ocol = f"wrow[w] * {br} + v"
    z = "acc[v, q]"
    if bias:
        z += f" + bias[{ocol}]"
    if residual:
        z += f" + Rf[tile // {tpi}, {ocol}, (tile % {tpi}) * {qt} + q]"
    st = [f"acc[v, q] = {z}",
          f"Yf[tile // {tpi}, {ocol}, (tile % {tpi}) * {qt} + q] = {_epilogue('acc[v, q]', act)}"]
    i5 = " " * 20
    lines = [f"                for v in range({br}):"]
    ind = i5
    if g.o % br:
        lines.append(f"{ind}if {ocol} < {g.o}:")
        ind += "    "
    if npix % qt:
        lines += [f"{ind}if tile % {tpi} < {tpi - 1}:", f"{ind}    for q in T.vectorized({qt}):"]
        lines += [f"{ind}        {x}" for x in st]
        lines += [f"{ind}else:", f"{ind}    for q in range({npix % qt}):"]
        lines += [f"{ind}        {x}" for x in st]
    else:
        lines += [f"{ind}for q in T.vectorized({qt}):"]
        lines += [f"{ind}    {x}" for x in st]
    store = "\n".join(lines) + "\n"
    src = _HEAD.format(args=_args((g.n, g.c, g.h, g.w), nnzb, br, nrows, nwork, p.parts, g.o,
                                  bias, residual, y_shape))
    src += f'    Yf = T.decl_buffer(({g.n}, {g.o}, {npix}), "float32", data=Y.data)\n'
    if residual:
        src += f'    Rf = T.decl_buffer(({g.n}, {g.o}, {npix}), "float32", data=res.data)\n'
    # im2col into tiles; row k = c*KH*KW + i*KW + j matches weight.reshape(O, -1)
    inb = []
    if pt or sh * (oh - 1) + dh * (g.kh - 1) - pt >= g.h:
        inb.append(f"0 <= oy * {sh} + {dh} * ((kk // {g.kw}) % {g.kh}) - {pt} "
                   f"and oy * {sh} + {dh} * ((kk // {g.kw}) % {g.kh}) - {pt} < {g.h}")
    if pl or sw * (ow - 1) + dw * (g.kw - 1) - pl >= g.w:
        inb.append(f"0 <= ox * {sw} + {dw} * (kk % {g.kw}) - {pl} "
                   f"and ox * {sw} + {dw} * (kk % {g.kw}) - {pl} < {g.w}")
    iy = f"T.min(T.max(oy * {sh} + {dh} * ((kk // {g.kw}) % {g.kh}) - {pt}, 0), {g.h - 1})"
    ix = f"T.min(T.max(ox * {sw} + {dw} * (kk % {g.kw}) - {pl}, 0), {g.w - 1})"
    val = f"X[b, kk // {g.kh * g.kw}, {iy}, {ix}]"
    if inb:
        val = f"T.if_then_else({' and '.join(inb)}, {val}, T.float32(0))"
    src += f'''    B = T.alloc_buffer(({tiles}, {kdim}, {qt}), "float32")
    for kk in T.parallel({kdim}):
        for b in range({g.n}):
            for oy in range({oh}):
                for ox in range({ow}):
                    B[b * {tpi} + (oy * {ow} + ox) // {qt}, kk, (oy * {ow} + ox) % {qt}] = {val}
'''
    if npix % qt:
        src += f'''            for q in range({npix % qt}, {qt}):
                B[b * {tpi} + {tpi - 1}, kk, q] = T.float32(0)
'''
    return src + _core(br, qt, p.parts, store)
