"""Quantize an fp32 NCHW conv input into the uint8 "phase planes" every int8 conv kernel reads.

Layout (int32 words, little endian, byte t of a word = channel 4*c4 + t):
  P[n, c4, a*SW + b, y*WQ + x] = q(Xpad[n, 4*c4 : 4*c4 + 4, y*SH + a, x*SW + b])
with (a, b) the stride phase, HQ = OH + (KH-1)*DH // SH rows and WQ = OW + (KW-1)*DW // SW
columns per plane, and SLACK spare words after each plane (PS = HQ*WQ + SLACK words a plane).
Why: output pixel (oy, ox) at tap (i, j) reads plane (i*DH % SH, j*DW % SW) at position
(oy + i*DH // SH) * WQ + ox + j*DW // SW, so 16 output pixels that are consecutive in the
"pitched" index p = oy*WQ + ox read 16 consecutive words: 64 bytes = [16 pixels x 4
channels], one vpdpbusd operand, for 1x1, 3x3, strided, dilated and the 7x7/2 stem alike.
Positions outside the input (padding, the phase planes' spare rows and columns, the slack)
hold the zero point, the real value 0; channels padded up to a multiple of 4 hold 0 (their
weights are 0). The SLACK words let a tile's last 16-lane vector read past the last pixel.
Phase planes no tap reads are left unwritten (a 1x1 stride-2 conv reads only phase (0, 0):
packing the other three cost 4x the work of the layer's useful input).

Quantization is spdy/qscheme.py's: q = clip(rint(x * inv_scale) + zp, 0, 255), with
rint = nearbyint (half to even) and inv_scale = float32(1 / scale). "static" bakes
(inv_scale, zp) into the kernel; "dynamic" reads them from a 3-float buffer
qp = [scale, zp, inv_scale] that ``qparams_source``'s kernel computes from the input's
min/max at run time (the qscheme's per-row rule applied to the whole tensor).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spdy.qscheme import inv_scale

SLACK = 16


@dataclass(frozen=True)
class QConvGeom:
    """Shapes of one int8 conv: input [N, C, H, W], weight [O, C/groups, KH, KW]."""
    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)      # (top, left, bottom, right)
    dilation: tuple = (1, 1)
    groups: int = 1

    def __post_init__(self):
        if self.c % self.groups or self.o % self.groups:
            raise ValueError(f"groups={self.groups} must divide input channels {self.c} and outputs {self.o}")
        if self.oh < 1 or self.ow < 1:
            raise ValueError(f"conv output would be empty: input {self.h}x{self.w}, kernel {self.kh}x{self.kw}, "
                             f"stride {self.stride}, padding {self.padding}, dilation {self.dilation}")

    @property
    def oh(self) -> int:
        pt, _, pb, _ = self.padding
        return (self.h + pt + pb - self.dilation[0] * (self.kh - 1) - 1) // self.stride[0] + 1

    @property
    def ow(self) -> int:
        _, pl, _, pr = self.padding
        return (self.w + pl + pr - self.dilation[1] * (self.kw - 1) - 1) // self.stride[1] + 1

    @property
    def c4(self) -> int:
        return -(-self.c // 4)

    @property
    def hq(self) -> int:
        return self.oh + (self.kh - 1) * self.dilation[0] // self.stride[0]

    @property
    def wq(self) -> int:
        return self.ow + (self.kw - 1) * self.dilation[1] // self.stride[1]

    @property
    def ss(self) -> int:
        return self.stride[0] * self.stride[1]

    @property
    def ps(self) -> int:
        return self.hq * self.wq + SLACK

    @property
    def plane_words(self) -> int:
        """Size of the packed input, int32 words."""
        return self.n * self.c4 * self.ss * self.ps

    @property
    def taps(self) -> int:
        return self.kh * self.kw

    def used_phases(self) -> list[tuple[int, int]]:
        """The stride phases (a, b) some tap reads; the pack writes only these planes."""
        rows = sorted({(i * self.dilation[0]) % self.stride[0] for i in range(self.kh)})
        cols = sorted({(j * self.dilation[1]) % self.stride[1] for j in range(self.kw)})
        return [(a, b) for a in rows for b in cols]

    def tap_offset(self, tap: int) -> int:
        """Word offset of tap (kh*KW + kw) from the output pixel's pitched index, within channel group 0."""
        i, j = divmod(tap, self.kw)
        sh, sw = self.stride
        dh, dw = self.dilation
        phase = ((i * dh) % sh) * sw + (j * dw) % sw
        return phase * self.ps + ((i * dh) // sh) * self.wq + (j * dw) // sw

    def key(self) -> str:
        return (f"x{self.n}x{self.c}x{self.h}x{self.w}:o{self.o}:k{self.kh}x{self.kw}:s{self.stride[0]}x"
                f"{self.stride[1]}:p{'x'.join(map(str, self.padding))}:d{self.dilation[0]}x{self.dilation[1]}"
                f":g{self.groups}")


def _word_literal(zp: int) -> int:
    """zp in all 4 bytes, as a signed int32 literal."""
    v = int(zp) * 0x01010101
    return v - (1 << 32) if v >= 1 << 31 else v


def rint(x: str, lanes: int = 1) -> str:
    """Round half to even, vectorized: T.nearbyint is scalarized per lane by TVM 0.27's LLVM
    codegen (16 vroundss for one vector); llvm.roundeven becomes one vrndscaleps."""
    ft = "float32" if lanes == 1 else f"float32x{lanes}"
    return f'T.call_llvm_pure_intrin("{ft}", "llvm.roundeven", {x})'


def _quant(x: str, inv: str, zpf: str, lanes: int = 1) -> str:
    it = "int32" if lanes == 1 else f"int32x{lanes}"
    return (f"T.Cast(\"{it}\", T.max(T.min({rint(f'{x} * {inv}', lanes)} + {zpf}, T.float32(255)), "
            f"T.float32(0)))")


def pack_source(g: QConvGeom, mode: str, *, scale: float = 1.0, zero_point: int = 0) -> str:
    """TVMScript of the quantize+pack kernel main(X [N,C,H,W] f32, [qp f32[3]], P int32[plane_words])."""
    if mode not in ("static", "dynamic"):
        raise ValueError(f"activation mode must be 'static' or 'dynamic', got {mode!r}")
    sh, sw = g.stride
    pt, pl, _, _ = g.padding
    hq, wq, ps, c4 = g.hq, g.wq, g.ps, g.c4
    args = [f'X: T.Buffer(({g.n}, {g.c}, {g.h}, {g.w}), "float32")']
    if mode == "dynamic":
        args.append('qp: T.Buffer((3,), "float32")')
    args.append(f'P: T.Buffer(({g.plane_words},), "int32")')
    lines = ["@T.prim_func", f"def main({', '.join(args)}):",
             '    T.func_attr({"global_symbol": "main", "tir.noalias": True, "op_pattern": 8, "spdy.kernel": "int8_pack"})',
             f'    Xf = T.decl_buffer(({g.n * g.c * g.h * g.w},), "float32", data=X.data)']
    if mode == "static":
        inv, zpf, zpw = f"T.float32({float(inv_scale(scale))!r})", f"T.float32({float(int(zero_point))!r})", \
            str(_word_literal(zero_point))
    else:
        lines += ["    zpi: T.let = T.Cast(\"int32\", qp[1])",
                  "    zpw: T.let = zpi | (zpi << 8) | (zpi << 16) | (zpi << 24)"]
        inv, zpf, zpw = "qp[2]", "qp[1]", "zpw"

    chans = [t for t in range(4) if not (c4 == 1 and t >= g.c)]   # c4 == 1: padded channels are constant 0

    def row_bases(iy: str, ind: str) -> list[str]:
        """Scalar lets of the 4 input rows a plane row reads. Loads then index a flat buffer
        by row base + x: with the 4-d index TVM's vectorizer emitted gathers (8x slower)."""
        out = []
        for t in chans:
            ch = f"(nc % {c4}) * 4 + {t}"
            ch = ch if g.c % 4 == 0 else f"T.min({ch}, {g.c - 1})"
            out.append(f"{ind}xr{t}: T.let = (((nc // {c4}) * {g.c} + {ch}) * {g.h} + {iy}) * {g.w}")
        return out

    def word(ix: str) -> str:
        parts = []
        for t in chans:
            q = _quant(f"Xf[xr{t} + {ix}]", inv, zpf)
            if g.c % 4 and c4 > 1:
                q = f"T.if_then_else((nc % {c4}) * 4 + {t} < {g.c}, {q}, 0)"
            parts.append(q if t == 0 else f"({q} << {8 * t})")
        return " | ".join(parts)

    def strided_chunks(x0: int, nx: int, start: str, ind: str) -> list[str]:
        """Plane words x0.. x0+nx of a row for a column stride sw > 1, as explicit vectors:
        one masked load of 16*sw contiguous floats per channel, every sw-th lane picked by a
        shuffle (vpermt2ps). A stride-sw index in a vectorized loop became a gather: the
        stride-2 pack ran 10x slower than the stride-1 one."""
        wide, sel = 16 * sw, ", ".join(str(sw * l) for l in range(16))
        out = [f"{ind}for xo in range({-(-nx // 16)}):", f"{ind}    s0: T.let = {start} + xo * {wide}"]
        parts = []
        for t in chans:
            ld = (f'T.masked_load("float32x{wide}", Xf, T.ramp(xr{t} + s0, 1, {wide}), '
                  f'T.ramp(0, 1, {wide}) < T.broadcast({g.w} - s0, {wide}))')
            out.append(f"{ind}    v{t}: T.let = T.Shuffle([{ld}], [{sel}])")
            q = _quant(f"v{t}", inv, zpf, 16)
            if g.c % 4 and c4 > 1:
                q = f"{q} * T.Cast(\"int32\", (nc % {c4}) * 4 + {t} < {g.c})"
            parts.append(q if t == 0 else f"({q} << {8 * t})")
        out.append(f"{ind}    T.masked_store(P, {' | '.join(parts)}, T.ramp(base + {x0} + xo * 16, 1, 16), "
                   f"T.ramp(0, 1, 16) < T.broadcast({nx} - xo * 16, 16))")
        return out

    i1, i2, i3 = " " * 8, " " * 12, " " * 16
    # one parallel loop over (image x channel group, phase, row): one thread-pool launch. The
    # phases are inner so that each thread writes every plane of the same images (the conv
    # kernel's threads read them that way) and reads one contiguous part of the input (the
    # producer's threads wrote it that way). With the phase outermost, each thread wrote two
    # of four planes for all images, and half of every read crossed to the other core's cache:
    # in place a 3x3/2 pack took 2.3x and its conv up to 1.5x their stand-alone times.
    phases = g.used_phases()
    nph = len(phases)
    lines += [f"    for r in T.parallel({g.n * c4 * nph * hq}):",
              f"{i1}nc: T.let = r // {nph * hq}",
              f"{i1}y: T.let = r % {hq}"]
    for k, (a, b) in enumerate(phases):
        y0 = max(0, -(-(pt - a) // sh))
        y1 = min(hq, -(-(g.h + pt - a) // sh))
        x0 = max(0, -(-(pl - b) // sw))
        x1 = min(wq, -(-(g.w + pl - b) // sw))
        ph = a * sw + b
        start = len(lines)
        lines += [f"{i1}base: T.let = (nc * {g.ss} + {ph}) * {ps} + y * {wq}"]
        fill_row = [f"{i2}for x in T.vectorized({wq}):", f"{i3}P[base + x] = {zpw}"]
        if y1 > y0 and x1 > x0:
            lines.append(f"{i1}if {y0} <= y and y < {y1}:")
            if x0 > 0:
                lines += [f"{i2}for x in T.vectorized({x0}):", f"{i3}P[base + x] = {zpw}"]
            nx = x1 - x0
            lines += row_bases(f"y * {sh} + {a - pt}", i2)
            full, rem = divmod(nx, 16)
            if sw > 1:
                lines += strided_chunks(x0, nx, f"{x0 * sw + b - pl}", i2)
                full = rem = 0
            if full:
                lines += [f"{i2}for xo in range({full}):",
                          f"{i3}for xi in T.vectorized(16):",
                          f"{i3}    P[base + {x0} + xo * 16 + xi] = "
                          + word(f"({x0} + xo * 16 + xi) * {sw} + {b - pl}")]
            if rem:
                lines += [f"{i2}for xi in T.vectorized({rem}):",
                          f"{i3}P[base + {x0 + full * 16} + xi] = " + word(f"({x0 + full * 16} + xi) * {sw} + {b - pl}")]
            if x1 < wq:
                lines += [f"{i2}for x in T.vectorized({wq - x1}):", f"{i3}P[base + {x1} + x] = {zpw}"]
            lines.append(f"{i1}else:")
            lines += fill_row
        else:
            lines += [ln[4:] for ln in fill_row]
        lines += [f"{i1}if y == {hq - 1}:",
                  f"{i2}for x in T.vectorized({SLACK}):",
                  f"{i3}P[base + {wq} + x] = {zpw}"]
        if len(phases) > 1:
            lines[start:] = [f"{i1}if (r // {hq}) % {nph} == {k}:"] + ["    " + ln for ln in lines[start:]]
    return "\n".join(lines) + "\n"


def qparams_source(numel: int, parts: int = 8) -> str:
    """TVMScript of main(X f32[numel], qp f32[3]): qp = [scale, zp, float32(1/scale)] from
    lo = min(0, min X), hi = max(0, max X) as spdy.qscheme.dynamic_params_np computes them."""
    vecs = numel // 16
    per = -(-vecs // parts) if vecs else 0
    lines = ["@T.prim_func",
             f'def main(X: T.Buffer(({numel},), "float32"), qp: T.Buffer((3,), "float32")):',
             '    T.func_attr({"global_symbol": "main", "tir.noalias": True, "op_pattern": 8, "spdy.kernel": "int8_pack"})',
             f'    part = T.alloc_buffer(({parts * 32},), "float32")',
             f"    for p in T.parallel({parts}):",
             '        lo = T.alloc_buffer((16,), "float32")',
             '        hi = T.alloc_buffer((16,), "float32")',
             "        for l in T.vectorized(16):",
             "            lo[l] = T.float32(0)",
             "            hi[l] = T.float32(0)",
             f"        for i in range(T.max(0, T.min({per}, {vecs} - p * {per}))):",
             "            for l in T.vectorized(16):",
             f"                lo[l] = T.min(lo[l], X[(p * {per} + i) * 16 + l])",
             f"                hi[l] = T.max(hi[l], X[(p * {per} + i) * 16 + l])",
             "        for l in T.vectorized(16):",
             "            part[p * 32 + l] = lo[l]",
             "            part[p * 32 + 16 + l] = hi[l]",
             '    m = T.alloc_buffer((2,), "float32")',
             "    m[0] = T.float32(0)",
             "    m[1] = T.float32(0)",
             f"    for i in range({parts * 16}):",
             "        m[0] = T.min(m[0], part[(i // 16) * 32 + i % 16])",
             "        m[1] = T.max(m[1], part[(i // 16) * 32 + 16 + i % 16])",
             f"    for i in range({numel - vecs * 16}):",
             f"        m[0] = T.min(m[0], X[{vecs * 16} + i])",
             f"        m[1] = T.max(m[1], X[{vecs * 16} + i])",
             "    s: T.let = (m[1] - m[0]) / T.float32(255)",
             "    sc: T.let = T.Select(s > T.float32(0), s, T.float32(1))",
             "    qp[0] = sc",
             f"    qp[1] = T.max(T.min({rint('T.float32(0) - m[0] / sc')}, T.float32(255)), T.float32(0))",
             "    qp[2] = T.float32(1) / sc"]
    return "\n".join(lines) + "\n"


def pack_np(xq: np.ndarray, g: QConvGeom, zero_point: int) -> np.ndarray:
    """The planes (int32 [plane_words]) of an already quantized input uint8 [N, C, H, W] (tests)."""
    sh, sw = g.stride
    pt, pl, _, _ = g.padding
    n, c = xq.shape[:2]
    hp = max(g.h + pt, (g.hq - 1) * sh + sh) + 1
    wp = max(g.w + pl, (g.wq - 1) * sw + sw) + 1
    xp = np.full((n, g.c4 * 4, hp, wp), zero_point, np.uint8)
    xp[:, c:, pt:pt + g.h, pl:pl + g.w] = 0       # padded channels: 0 inside the image, zp outside
    xp[:, :c, pt:pt + g.h, pl:pl + g.w] = xq
    out = np.full((n, g.c4, g.ss, g.ps), _word_literal(zero_point), np.int32)
    for a, b in g.used_phases():          # the kernel leaves the other planes unwritten
        pl_ = xp[:, :, a::sh, b::sw][:, :, :g.hq, :g.wq]
        words = pl_.reshape(n, g.c4, 4, g.hq, g.wq).transpose(0, 1, 3, 4, 2).copy().view(np.int32)[..., 0]
        out[:, :, a * sw + b, :g.hq * g.wq] = words.reshape(n, g.c4, -1)
    return out.reshape(-1)
