"""Dense int8 conv2d kernels (TVMScript) reading the phase planes of conv_pack.py.

y[n, o, p] = act((acc - zp*wsum[o]) * (x_scale*w_scale[o]) + bias[o] + residual[n, o, p]),
acc = sum over (tap, channel) of u8 activation x s8 weight, exact in int32; the epilogue is
fused into the store, the output is fp32 NCHW like every other spdy kernel.

Three formulations ("kind" of ConvParams), the tuner picks per layer:
  "pix"      lanes = 16 consecutive output pixels of the pitched index p = oy*WQ + ox; one
             64-byte load of the planes is [16 pixels x 4 channels] at a tap, each of MR output
             channels broadcasts its 4 weight bytes (one int32 word): MR x NV accumulators,
             vpdpbusd(acc, activations, weights). Lanes on the WQ - OW junk columns of a row
             are computed and dropped by masked stores (one per output row the vector spans).
  "chn"      lanes = 16 output channels: for maps with few pixels (7x7, 14x14). Weights are
             packed [O/16, C4, tap, 16 words]; each of MP output pixels broadcasts its 4
             activation bytes; stores scatter (stride OH*OW), the reduction dominates.
  "generic"  no VNNI, or groups > 1 (depthwise, grouped): pixel lanes of exact int32
             multiply-adds of bytes extracted from the plane words ((w >> 8t) & 255); LLVM
             vectorizes it. Never vpmaddubsw (saturates at int16).
Tiles that would run past the last pixel or vector are clamped onto it (recomputed, stored
again with the same values), so there are no tail bodies; output channels are padded to
whole tiles in the constants and their stores are skipped.

"vnni512" uses 16 int32 lanes (zmm, llvm.x86.avx512.vpdpbusd.512); "vnni256" 8 lanes
(ymm, AVX-VNNI or AVX-512 VNNI with VL). Accumulators are one small buffer each (default
scope): LLVM keeps them in registers (a single MR*NV*16 buffer measured 2-4x slower).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spdy.runtime.kernels.tvmscript import activation_expr

from .conv_blocks import int8_conv_blocks
from .conv_pack import QConvGeom

ISAS = ("vnni512", "vnni256", "generic")
_INTRIN = {"vnni512": "llvm.x86.avx512.vpdpbusd.512", "vnni256": "llvm.x86.avx512.vpdpbusd.256"}


def conv_isa(target) -> str:
    """Which int8 instruction set the conv kernels use on a tvm Target (read from the target).

    Private twin of spdy.runtime.int8.features.int8_support (same rule) so the conv kernels
    do not depend on the Linear side's module."""
    from tvm.target import codegen

    def has(f: str) -> bool:
        try:
            return bool(codegen.target_has_features(f, target))
        except Exception:  # noqa: BLE001 - a non-llvm target has no features
            return False
    if has("avx512vnni") and has("avx512bw"):
        return "vnni512"
    if has("avxvnni") or (has("avx512vnni") and has("avx512vl")):
        return "vnni256"
    return "generic"


def isa_lanes(isa: str, target=None) -> int:
    """int32 lanes of one vector: 16 on AVX-512, 8 otherwise (generic picks by target)."""
    if isa == "vnni512":
        return 16
    if isa == "vnni256":
        return 8
    if target is not None:
        from tvm.target import codegen
        try:
            return 16 if codegen.target_has_features("avx512f", target) else 8
        except Exception:  # noqa: BLE001
            return 8
    return 8


@dataclass(frozen=True)
class ConvParams:
    """Tile shape: kind "pix"/"generic": mr output channels x nv pixel vectors;
    kind "chn": mr output pixels x nv channel vectors. `outer`: which index the parallel
    task numbering keeps outermost. "pixels": a pixel tile's channel blocks run back to back
    (its activations stay in L1 while the weights stream: big maps, few weights); "channels":
    a channel block's pixel tiles run back to back (its weights stay in L1/L2: small maps
    with megabytes of weights, e.g. ResNet's 7x7 512-channel convs)."""
    kind: str = "pix"
    mr: int = 8
    nv: int = 2
    outer: str = "pixels"

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(d: dict) -> "ConvParams":
        return ConvParams(str(d["kind"]), int(d["mr"]), int(d["nv"]), str(d.get("outer", "pixels")))


def task_split(p: ConvParams, npt: int, nob: int, ind: str) -> list[str]:
    """Bind `pt` (pixel tile, image-major) and `ob` (channel block) from the parallel index t."""
    if p.outer == "channels":
        return [f"{ind}pt: T.let = t % {npt}", f"{ind}ob: T.let = t // {npt}"]
    if p.outer != "pixels":
        raise ValueError(f"ConvParams.outer must be 'pixels' or 'channels', got {p.outer!r}")
    return [f"{ind}ob: T.let = t % {nob}", f"{ind}pt: T.let = t // {nob}"]


# -- shared source pieces (also used by sparse_conv.py) ------------------------------------

def vnni_call(isa: str, acc: str, act: str, wgt: str, lanes: int) -> str:
    """acc + dot4(u8 act, s8 wgt) per int32 lane; act/wgt are int32xL expressions (4 bytes a lane)."""
    return (f'T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("{_INTRIN[isa]}"), {acc}, '
            f'T.reinterpret({act}, dtype="int8x{4 * lanes}"), T.reinterpret({wgt}, dtype="int8x{4 * lanes}"), '
            f'dtype="int32x{lanes}")')


def kernel_args(g: QConvGeom, mode: str, weight_args: list[str], opad: int, *, bias: bool,
                residual: bool) -> str:
    """P, [qp], *weight_args, ec, es, [bias], [R], Y: the argument order of every conv kernel."""
    a = [f'P: T.Buffer(({g.plane_words},), "int32")']
    if mode == "dynamic":
        a.append('qp: T.Buffer((3,), "float32")')
    a += weight_args
    a += [f'ec: T.Buffer(({opad},), "int32")', f'es: T.Buffer(({opad},), "float32")']
    if bias:
        a.append(f'bias: T.Buffer(({opad},), "float32")')
    if residual:
        a.append(f'R: T.Buffer(({g.n}, {g.o}, {g.oh}, {g.ow}), "float32")')
    a.append(f'Y: T.Buffer(({g.n}, {g.o}, {g.oh}, {g.ow}), "float32")')
    return ", ".join(a)


def kernel_head(args: str, g: QConvGeom, mode: str, residual: bool) -> list[str]:
    lines = ["@T.prim_func", f"def main({args}):",
             '    T.func_attr({"global_symbol": "main", "tir.noalias": True, "op_pattern": 8, '
             '"spdy.kernel": "int8_conv"})',
             f'    Yf = T.decl_buffer(({g.n * g.o * g.oh * g.ow},), "float32", data=Y.data)']
    if residual:
        lines.append(f'    Rf = T.decl_buffer(({g.n * g.o * g.oh * g.ow},), "float32", data=R.data)')
    if mode == "dynamic":
        lines += ['    xsc: T.let = qp[0]', '    zpi: T.let = T.Cast("int32", qp[1])']
    return lines


def requant(acc: str, o: str, mode: str, lanes: int = 1) -> str:
    """float (acc - zp*wsum[o]) * (x_scale*w_scale[o]); acc int32 (xL when lanes > 1, o scalar)."""
    ft = "float32" if lanes == 1 else f"float32x{lanes}"
    if mode == "static":            # ec = zp*wsum, es = x_scale*w_scale (compile-time)
        return f'T.Cast("{ft}", {acc} - ec[{o}]) * es[{o}]'
    return f'T.Cast("{ft}", {acc} - zpi * ec[{o}]) * (xsc * es[{o}])'   # ec = wsum, es = w_scale


def accumulators(names: list[str], lanes: int, ind: str) -> list[str]:
    out = []
    for a in names:
        out += [f'{ind}{a} = T.alloc_buffer(({lanes},), "int32")',
                f"{ind}for z in T.vectorized({lanes}):", f"{ind}    {a}[z] = 0"]
    return out


def acc_update(a: str, expr_of_acc: str, lanes: int) -> str:
    return f"{a}[T.ramp(0, 1, {lanes})] = {expr_of_acc}"


def acc_load(a: str, lanes: int) -> str:
    return f'{a}.vload([0], "int32x{lanes}")'


def tap_loops(g: QConvGeom, ind: str) -> list[str]:
    """Unrolled loops over the taps (i, j) binding `ko_t` (the tap's word offset, conv_pack.py)
    and `tap` (i*KW + j). Unrolled by TVM, not in the source: parsing 49 copies of a tile
    body (the 7x7 stem) took seconds."""
    sh, sw = g.stride
    dh, dw = g.dilation
    koff = (f"(((i * {dh}) % {sh}) * {sw} + (j * {dw}) % {sw}) * {g.ps} + ((i * {dh}) // {sh}) * {g.wq}"
            f" + (j * {dw}) // {sw}")
    return [f"{ind}for i in T.unroll({g.kh}):",
            f"{ind}    for j in T.unroll({g.kw}):",
            f"{ind}        ko_t: T.let = {koff}",
            f"{ind}        tap: T.let = i * {g.kw} + j"]


def pitched_vectors(g: QConvGeom, lanes: int) -> int:
    """Vectors of `lanes` pitched positions that cover every output pixel of one image."""
    return -(-((g.oh - 1) * g.wq + g.ow) // lanes)


def pitched_store(g: QConvGeom, lanes: int, ind: str, val: str, obase: str, p0: str, *,
                  residual: bool, act: str, tag: str) -> list[str]:
    """Store the fp32 vector `val` (before residual and activation) of the `lanes` pitched
    positions p0.. of output plane `obase` (= (n*O + o) * OH*OW): one masked store per output
    row the vector spans; junk columns and positions past the last pixel are masked off.
    `tag` makes the let names unique within the kernel."""
    npx = g.oh * g.ow
    lane = f"T.ramp(0, 1, {lanes})"
    out = []
    if g.wq == g.ow:                       # rows are contiguous in the output too
        idx = f"T.ramp({obase} + {p0}, 1, {lanes})"
        if residual:
            val = f'{val} + T.masked_load("float32x{lanes}", Rf, {idx}, {lane} < T.broadcast({npx} - {p0}, {lanes}))' \
                if npx % lanes else f'{val} + Rf.vload([{obase} + {p0}], "float32x{lanes}")'
        v = activation_expr(act, f"vv{tag}")
        out.append(f"{ind}vv{tag}: T.let = {val}")
        if npx % lanes:
            out.append(f"{ind}T.masked_store(Yf, {v}, {idx}, {lane} < T.broadcast({npx} - {p0}, {lanes}))")
        else:
            out.append(f"{ind}Yf[{idx}] = {v}")
        return out
    seg = (lanes - 1 + g.wq - 1) // g.wq + 1
    out.append(f"{ind}vv{tag}: T.let = {val}")
    if not residual:
        out.append(f"{ind}va{tag}: T.let = {activation_expr(act, f'vv{tag}')}")
    out.append(f"{ind}y0{tag}: T.let = {p0} // {g.wq}")
    for r in range(seg):
        lo = f"(y0{tag} + {r}) * {g.wq} - {p0}"
        hi = f"T.min({lo} + {g.ow}, {g.oh * g.wq} - {p0})"
        mask = f"T.And({lane} >= T.broadcast({lo}, {lanes}), {lane} < T.broadcast({hi}, {lanes}))"
        idx = f"T.ramp({obase} + {p0} - (y0{tag} + {r}) * {g.wq - g.ow}, 1, {lanes})"
        # (a boolean vector cannot be let-bound: TVM 0.27's analyzer fails on it)
        if residual:
            v = activation_expr(act, f'(vv{tag} + T.masked_load("float32x{lanes}", Rf, {idx}, {mask}))')
        else:
            v = f"va{tag}"
        out.append(f"{ind}T.masked_store(Yf, {v}, {idx}, {mask})")
    return out


def channel_store(g: QConvGeom, lanes: int, ind: str, acc: str, o0: str, q: str, n: str, mode: str, *,
                  bias: bool, residual: bool, act: str, guard: bool) -> list[str]:
    """Store `lanes` output channels o0.. of pixel q (flat oy*OW + ox) of image n from int32 acc;
    `guard`: some of those channels may be padding (>= O) and are skipped."""
    npx = g.oh * g.ow
    o = f"({o0} + l)"
    z = requant(f"{acc}[l]", o, mode)
    if bias:
        z += f" + bias[{o}]"
    dst = f"(({n}) * {g.o} + {o}) * {npx} + {q}"
    if residual:
        z += f" + Rf[{dst}]"
    body = [f"{ind}for l in T.vectorized({lanes}):", f"{ind}    z{acc}: T.let = {z}",
            f"{ind}    Yf[{dst}] = {activation_expr(act, f'z{acc}')}"]
    return _guard_channels(body, g, o, ind) if guard else body


def _guard_channels(body: list[str], g: QConvGeom, o: str, ind: str) -> list[str]:
    """Skip padded output channels (o >= O): the loop over lanes becomes serial with a guard."""
    head = body[0].replace("T.vectorized", "T.serial")
    rest = [ind + "    " + f"if {o} < {g.o}:"] + ["    " + ln for ln in body[1:]]
    return [head] + rest


# -- dense kernels ---------------------------------------------------------------------------

def _pix_source(g: QConvGeom, p: ConvParams, isa: str, lanes: int, mode: str, *, bias, residual, act) -> str:
    mr, nv = p.mr, p.nv
    ob = -(-g.o // mr)
    vec = pitched_vectors(g, lanes)
    nvt = -(-vec // nv)
    opad = ob * mr
    wlen = ob * g.c4 * g.taps * mr
    args = kernel_args(g, mode, [f'Wp: T.Buffer(({wlen},), "int32")'], opad, bias=bias, residual=residual)
    L = kernel_head(args, g, mode, residual)
    i1, i2 = " " * 8, " " * 12
    L += [f"    for t in T.parallel({g.n * nvt * ob}):"] + task_split(p, g.n * nvt, ob, i1)
    L += [f"{i1}n: T.let = pt // {nvt}"]
    L += [f"{i1}p{v}: T.let = T.min((pt % {nvt}) * {nv} + {v}, {vec - 1}) * {lanes}" for v in range(nv)]
    accs = [[f"a{m}_{v}" for v in range(nv)] for m in range(mr)]
    L += accumulators([a for row in accs for a in row], lanes, i1)
    L += [f"{i1}for c4 in range({g.c4}):",
          f"{i2}pb: T.let = (n * {g.c4} + c4) * {g.ss * g.ps}",
          f"{i2}wb: T.let = (ob * {g.c4} + c4) * {g.taps * mr}"]
    L += tap_loops(g, i2)
    i4 = i2 + " " * 8
    for m in range(mr):
        w = f"T.broadcast(Wp[wb + tap * {mr} + {m}], {lanes})"
        for v in range(nv):
            x = f'P.vload([pb + ko_t + p{v}], "int32x{lanes}")'
            a = accs[m][v]
            L.append(f"{i4}{acc_update(a, vnni_call(isa, acc_load(a, lanes), x, w, lanes), lanes)}")
    for m in range(mr):
        ind = i1
        if g.o % mr:
            L.append(f"{i1}if ob * {mr} + {m} < {g.o}:")
            ind = i2
        for v in range(nv):
            o = f"ob * {mr} + {m}"
            val = requant(acc_load(accs[m][v], lanes), o, mode, lanes)
            if bias:
                val += f" + bias[{o}]"
            L += pitched_store(g, lanes, ind, val, f"(n * {g.o} + {o}) * {g.oh * g.ow}", f"p{v}",
                               residual=residual, act=act, tag=f"{m}_{v}")
    return "\n".join(L) + "\n"


def _chn_source(g: QConvGeom, p: ConvParams, isa: str, lanes: int, mode: str, *, bias, residual, act) -> str:
    mp, nv = p.mr, p.nv
    npx = g.oh * g.ow
    tpi = -(-npx // mp)
    ob = -(-g.o // (lanes * nv))
    opad = ob * lanes * nv
    wlen = ob * g.c4 * g.taps * nv * lanes
    args = kernel_args(g, mode, [f'Wp: T.Buffer(({wlen},), "int32")'], opad, bias=bias, residual=residual)
    L = kernel_head(args, g, mode, residual)
    i1, i2 = " " * 8, " " * 12
    L += [f"    for t in T.parallel({g.n * tpi * ob}):"] + task_split(p, g.n * tpi, ob, i1)
    L += [f"{i1}n: T.let = pt // {tpi}"]
    for i in range(mp):
        L += [f"{i1}q{i}: T.let = T.min((pt % {tpi}) * {mp} + {i}, {npx - 1})",
              f"{i1}b{i}: T.let = (q{i} // {g.ow}) * {g.wq} + q{i} % {g.ow}"]
    accs = [[f"a{i}_{v}" for v in range(nv)] for i in range(mp)]
    L += accumulators([a for row in accs for a in row], lanes, i1)
    L += [f"{i1}for c4 in range({g.c4}):",
          f"{i2}pb: T.let = (n * {g.c4} + c4) * {g.ss * g.ps}",
          f"{i2}wb: T.let = (ob * {g.c4} + c4) * {g.taps * nv * lanes}"]
    L += tap_loops(g, i2)
    i4 = i2 + " " * 8
    for v in range(nv):
        w = f'Wp.vload([wb + (tap * {nv} + {v}) * {lanes}], "int32x{lanes}")'
        for i in range(mp):
            x = f"T.broadcast(P[pb + ko_t + b{i}], {lanes})"
            a = accs[i][v]
            L.append(f"{i4}{acc_update(a, vnni_call(isa, acc_load(a, lanes), x, w, lanes), lanes)}")
    for i in range(mp):
        for v in range(nv):
            L += channel_store(g, lanes, i1, accs[i][v], f"(ob * {nv} + {v}) * {lanes}", f"q{i}", "n", mode,
                               bias=bias, residual=residual, act=act, guard=g.o % (lanes * nv) != 0)
    return "\n".join(L) + "\n"


def _generic_source(g: QConvGeom, p: ConvParams, lanes: int, mode: str, *, bias, residual, act) -> str:
    mr, nv = p.mr, p.nv
    og, cg = g.o // g.groups, g.c // g.groups
    ob = -(-og // mr)
    vec = pitched_vectors(g, lanes)
    nvt = -(-vec // nv)
    wlen = g.groups * ob * cg * g.taps * mr
    args = kernel_args(g, mode, [f'Wg: T.Buffer(({wlen},), "int32")'], g.o, bias=bias, residual=residual)
    L = kernel_head(args, g, mode, residual)
    i1, i2 = " " * 8, " " * 12
    L += [f"    for t in T.parallel({g.n * nvt * g.groups * ob}):",
          f"{i1}ob: T.let = t % {ob}",
          f"{i1}gr: T.let = (t // {ob}) % {g.groups}",
          f"{i1}pt: T.let = t // {ob * g.groups}",
          f"{i1}n: T.let = pt // {nvt}"]
    L += [f"{i1}p{v}: T.let = T.min((pt % {nvt}) * {nv} + {v}, {vec - 1}) * {lanes}" for v in range(nv)]
    accs = [[f"a{m}_{v}" for v in range(nv)] for m in range(mr)]
    L += accumulators([a for row in accs for a in row], lanes, i1)
    L += [f"{i1}for ci in range({cg}):",
          f"{i2}c: T.let = gr * {cg} + ci",
          f"{i2}pb: T.let = (n * {g.c4} + c // 4) * {g.ss * g.ps}",
          f"{i2}sh: T.let = (c % 4) * 8",
          f"{i2}wb: T.let = ((gr * {ob} + ob) * {cg} + ci) * {g.taps * mr}"]
    L += tap_loops(g, i2)
    i4 = i2 + " " * 8
    for v in range(nv):
        x = f'T.bitwise_and(T.shift_right(P.vload([pb + ko_t + p{v}], "int32x{lanes}"), sh), 255)'
        L.append(f"{i4}x{v}: T.let = {x}")
        for m in range(mr):
            a = accs[m][v]
            L.append(f"{i4}{acc_update(a, f'{acc_load(a, lanes)} + x{v} * Wg[wb + tap * {mr} + {m}]', lanes)}")
    for m in range(mr):
        ind = i1
        if og % mr:
            L.append(f"{i1}if ob * {mr} + {m} < {og}:")
            ind = i2
        for v in range(nv):
            o = f"gr * {og} + ob * {mr} + {m}"
            val = requant(acc_load(accs[m][v], lanes), o, mode, lanes)
            if bias:
                val += f" + bias[{o}]"
            L += pitched_store(g, lanes, ind, val, f"(n * {g.o} + {o}) * {g.oh * g.ow}", f"p{v}",
                               residual=residual, act=act, tag=f"{m}_{v}")
    return "\n".join(L) + "\n"


def dense_conv_source(g: QConvGeom, p: ConvParams, *, isa: str, lanes: int, mode: str, bias: bool,
                      residual: bool, act: str) -> str:
    """TVMScript of main(P, [qp], W, ec, es, [bias], [R], Y) for a dense int8 conv."""
    if p.kind == "generic":
        return _generic_source(g, p, lanes, mode, bias=bias, residual=residual, act=act)
    if isa not in _INTRIN:
        raise ValueError(f"the {p.kind!r} int8 conv kernel needs VNNI (target isa {isa!r}); use kind 'generic'")
    if g.groups != 1:
        raise ValueError(f"the {p.kind!r} int8 conv kernel needs groups == 1 (got {g.groups}); use kind 'generic'")
    if p.kind == "pix":
        return _pix_source(g, p, isa, lanes, mode, bias=bias, residual=residual, act=act)
    if p.kind == "chn":
        return _chn_source(g, p, isa, lanes, mode, bias=bias, residual=residual, act=act)
    raise ValueError(f"unknown int8 conv kernel kind {p.kind!r}; known: pix, chn, generic (amx: conv_amx.py)")


def out_channels_padded(g: QConvGeom, p: ConvParams, lanes: int) -> int:
    if p.kind == "chn":
        return -(-g.o // (lanes * p.nv)) * lanes * p.nv
    if p.kind == "generic":
        return g.o
    return -(-g.o // p.mr) * p.mr


def pack_dense_weight(w_q: np.ndarray, g: QConvGeom, p: ConvParams, lanes: int) -> np.ndarray:
    """The int32 weight constant of dense_conv_source's kernel (flat)."""
    w_q = np.asarray(w_q, np.int8)
    if p.kind == "generic":
        og, cg = g.o // g.groups, g.c // g.groups
        ob = -(-og // p.mr)
        w = np.zeros((g.groups, ob * p.mr, cg, g.taps), np.int32)
        w[:, :og] = w_q.reshape(g.groups, og, cg, g.taps)
        return np.ascontiguousarray(w.reshape(g.groups, ob, p.mr, cg, g.taps).transpose(0, 1, 3, 4, 2)).reshape(-1)
    words = int8_conv_blocks(w_q).view(np.int32)[..., 0].reshape(g.o, g.taps, g.c4)   # [O, tap, c4]
    opad = out_channels_padded(g, p, lanes)
    wp = np.zeros((opad, g.taps, g.c4), np.int32)
    wp[:g.o] = words
    if p.kind == "pix":                       # [OB, C4, tap, MR]
        return np.ascontiguousarray(wp.reshape(-1, p.mr, g.taps, g.c4).transpose(0, 3, 2, 1)).reshape(-1)
    # chn: [OB, C4, tap, NV, L]
    return np.ascontiguousarray(wp.reshape(-1, p.nv, lanes, g.taps, g.c4).transpose(0, 4, 3, 1, 2)).reshape(-1)


#: weight bytes above which tiles that keep a channel block's weights in cache (outer="channels")
#: are worth timing: beyond L1/L2 shares, re-streaming the weights per pixel tile costs more
#: than the compute (ResNet-18's 512-channel 3x3: 2.4 MB of weights, 7 pixel tiles)
BIG_WEIGHTS = 256 * 1024


def dense_candidates(g: QConvGeom, isa: str, lanes: int) -> list[ConvParams]:
    """Tile shapes worth timing (<= 16, the likeliest first): <= 24 accumulators (32 vector
    registers), no tile mostly padding; channel-outer orders when the weights are big."""
    if isa == "generic" or g.groups != 1:
        og = g.o // g.groups
        return [ConvParams("generic", mr, nv) for mr, nv in ((1, 2), (1, 4), (2, 2), (4, 2), (4, 4), (8, 2))
                if mr <= max(1, og) or mr == 1]
    vec = pitched_vectors(g, lanes)
    npx = g.oh * g.ow
    pix = [ConvParams("pix", mr, nv) for mr, nv in ((8, 2), (4, 4), (8, 3), (6, 4), (12, 2), (4, 6), (16, 1))
           if nv <= vec and (mr <= g.o or mr == 4)]
    chn = [ConvParams("chn", mp, nv) for mp, nv in ((7, 2), (8, 2), (12, 2), (4, 4), (14, 1))
           if mp <= npx and lanes * nv <= max(lanes, g.o)]
    if g.o * g.c4 * 4 * g.taps <= BIG_WEIGHTS:
        return pix + chn
    swap = [ConvParams(p.kind, p.mr, p.nv, "channels") for p in (pix[:3] + chn[:3])]
    return (swap + pix + chn)[:16]


def dense_default(g: QConvGeom, isa: str, lanes: int) -> ConvParams:
    """Untuned choice: pixel lanes when rows are long enough to fill vectors, else channel lanes."""
    if isa == "generic" or g.groups != 1:
        return ConvParams("generic", 1 if g.o // g.groups < 4 else 4, 2)
    outer = "channels" if g.o * g.c4 * 4 * g.taps > BIG_WEIGHTS else "pixels"
    if g.ow >= 14 or g.o < lanes:
        return ConvParams("pix", 8 if g.o >= 8 else 4, 2, outer)
    return ConvParams("chn", 7, 2 if g.o >= 2 * lanes else 1, outer)
