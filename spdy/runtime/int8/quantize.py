"""Quantize float32 activations to uint8 (spdy/qscheme.py) into the layout the int8 GEMMs read.

Layout "panel(mr)": ``q[MB, K4, mr * 4]`` with ``MB = ceil(M / mr)``, ``K4 = ceil(K / 4)``:
byte ``q[m // mr, k // 4, (m % mr) * 4 + k % 4]`` holds x[m, k]. So the 4 consecutive inputs
one ``vpdpbusd`` lane reduces are one dword, and
  - mr = 1 is plain row-major ``[M, Kp]``;
  - mr = MR (the dense/16x4 register tile) makes a tile's MR rows of one k step one
    contiguous run (one cache line for MR = 16), streamed in order by the k loop;
  - mr = MT*16 (a token tile of the lanes-over-tokens sparse kernels): 16 tokens of one k
    group are one 64-byte vector, what those kernels load.
Padding: rows past M and columns past K hold the zero point (the real value 0). The weights
are zero-padded in K too, so pad columns contribute nothing either way; pad rows are computed
and never stored. Dynamic mode gives pad rows scale 1 and zero point 0.

Static: one (scale, zero point) baked into the kernel as float32 literals, ``q = clip(rint(x *
float32(1/scale)) + zp, 0, 255)``. Dynamic: per row ``lo = min(0, min x)``, ``hi = max(0, max
x)``, ``scale = (hi - lo) / 255`` (1 if 0), ``zp = clip(rint(-lo / scale), 0, 255)``, written to
``xs[Mp]`` (float32) and ``zq[Mp]`` (int32) for the epilogue. T.nearbyint rounds half to even
like np.rint, and every step is the same float32 operation as the numpy reference, so the
bytes match qscheme.quantize_np / dynamic_params_np exactly.

The stage is emitted as text into the layer's GEMM kernel (one call per layer, and the tuner
times quantization and GEMM together); `quantize_kernel` wraps it as a stand-alone PrimFunc.
"""
from __future__ import annotations

import numpy as np

from spdy.qscheme import ActQuant, inv_scale

from spdy.runtime.kernels.tvmscript import parse_prim_func


def panel_dims(m: int, k: int, mr: int) -> tuple[int, int, int]:
    """(MB, K4, Mp) of the panel(mr) layout of an [m, k] activation."""
    mb = -(-m // mr)
    return mb, -(-k // 4), mb * mr


def _lit(x: float) -> str:
    return f"T.float32({float(np.float32(x))!r})"


def _qexpr(xval: str, inv: str, zpf: str) -> str:
    return f'T.Cast("uint8", T.min(T.max(T.nearbyint({xval} * {inv}) + {zpf}, T.float32(0)), T.float32(255)))'


def quantize_stage(m: int, k: int, mr: int, act: ActQuant, *, x: str = "X", q: str = "q",
                   ind: str = "    ") -> list[str]:
    """Loop nests (at indent ind) filling q (and xs, zq when dynamic) from the float32 X[m, k].

    The caller declares q ``[MB, K4, mr*4]`` uint8 (and xs/zq ``[Mp]``) as buffers or parameters.
    One parallel loop over panels (dynamic mode: each panel's rows get their min/max first, in
    the same task: one thread barrier less, which costs most on a loaded machine).
    Per panel and 16 inputs, each of up to 16 rows is quantized as one 16-lane vector (4 dwords,
    bound with T.let so it stays a register value), and one shuffle per k group gathers the
    rows' dwords into the panel's order, stored as one vector. Storing each row's 4-byte
    pieces straight into the panel, or staging through a stack tile, let LLVM split the
    arithmetic into 4-lane pieces or rebuild it from float gathers: 3-8x slower."""
    mb, k4, mp = panel_dims(m, k, mr)
    k16 = k // 16
    dynamic = act.mode == "dynamic"
    w, w2 = ind + "    ", ind + "        "
    L = []

    def row_params_one(ind2: str) -> list[str]:
        """Dynamic mode: scale and zero point of row r (a T.let) into xs[r], zq[r].

        Four independent min/max vectors over 64 inputs per step: one vector's chain of
        dependent vminps (4 cycles each) made this pass 3x slower than the quantizing one."""
        out = [f'{ind2}mn = T.alloc_buffer((64,), "float32")', f'{ind2}mx = T.alloc_buffer((64,), "float32")',
               f"{ind2}for l in T.vectorized(64):", f"{ind2}    mn[l] = T.float32(0)", f"{ind2}    mx[l] = T.float32(0)"]
        k64 = k // 64
        if k64:
            out += [f"{ind2}for kb in range({k64}):"]
            for u in range(4):
                out += [f"{ind2}    for l in T.vectorized(16):",
                        f"{ind2}        mn[{u * 16} + l] = T.min(mn[{u * 16} + l], {x}[r, kb * 64 + {u * 16} + l])",
                        f"{ind2}        mx[{u * 16} + l] = T.max(mx[{u * 16} + l], {x}[r, kb * 64 + {u * 16} + l])"]
        if k16 > k64 * 4:
            out += [f"{ind2}for kb in range({k64 * 4}, {k16}):", f"{ind2}    for l in T.vectorized(16):",
                    f"{ind2}        mn[l] = T.min(mn[l], {x}[r, kb * 16 + l])",
                    f"{ind2}        mx[l] = T.max(mx[l], {x}[r, kb * 16 + l])"]
        out += [f"{ind2}for l in T.vectorized(16):",
                f"{ind2}    mn[l] = T.min(T.min(mn[l], mn[16 + l]), T.min(mn[32 + l], mn[48 + l]))",
                f"{ind2}    mx[l] = T.max(T.max(mx[l], mx[16 + l]), T.max(mx[32 + l], mx[48 + l]))"]
        if k % 16:
            out += [f"{ind2}for l in range({k % 16}):",
                    f"{ind2}    mn[l] = T.min(mn[l], {x}[r, {k16 * 16} + l])",
                    f"{ind2}    mx[l] = T.max(mx[l], {x}[r, {k16 * 16} + l])"]
        lo, hi = "mn[0]", "mx[0]"
        for i in range(1, 16):
            lo, hi = f"T.min({lo}, mn[{i}])", f"T.max({hi}, mx[{i}])"
        return out + [f"{ind2}span: T.let = ({hi} - {lo}) / T.float32(255)",
                      f"{ind2}s: T.let = T.Select(span > T.float32(0), span, T.float32(1))",
                      f"{ind2}xs[r] = s",
                      f'{ind2}zq[r] = T.Cast("int32", T.min(T.max(T.nearbyint((T.float32(0) - {lo}) / s), '
                      f"T.float32(0)), T.float32(255)))"]

    def row_params(ind2: str, rows: int) -> list[str]:
        """Dynamic mode: per-row scale and zero point of the panel's real rows (into xs, zq)."""
        out = [f"{ind2}for i in range({rows}):", f"{ind2}    r: T.let = p * {mr} + i", *row_params_one(ind2 + "    ")]
        if rows < mr:   # padding rows: scale 1, zero point 0
            out += [f"{ind2}for i in range({rows}, {mr}):", f"{ind2}    xs[p * {mr} + i] = T.float32(1)",
                    f"{ind2}    zq[p * {mr} + i] = 0"]
        return out

    def inv(row: str) -> str:
        return f"(T.float32(1) / xs[{row}])" if dynamic else _lit(inv_scale(act.scale))

    def zpf(row: str) -> str:
        return f'T.Cast("float32", zq[{row}])' if dynamic else _lit(int(act.zero_point))

    def zpu(row: str) -> str:
        return f'T.Cast("uint8", zq[{row}])' if dynamic else f"T.uint8({int(act.zero_point)})"

    def qvec(row: str, lanes: int, off: str) -> str:
        """The quantized bytes of x[row, off : off + lanes] as lanes/4 dwords (int32 vector or scalar)."""
        v = f'{x}.vload([{row}, {off}], "float32x{lanes}")'
        b = lambda e: f"T.Broadcast({e}, {lanes})"  # noqa: E731
        return (f'T.reinterpret(T.Cast("uint8x{lanes}", T.min(T.max(T.nearbyint({v} * {b(inv(row))}) + '
                f'{b(zpf(row))}, {b("T.float32(0)")}), {b("T.float32(255)")})), dtype="int32{"x%d" % (lanes // 4) if lanes > 4 else ""}")')

    def rows_body(nrows: int, ind2: str) -> list[str]:
        """Quantize rows p*mr .. p*mr + nrows - 1 of panel p; the rest of the panel is padding."""
        out = row_params(ind2, nrows) if dynamic else []
        if k16:
            out.append(f"{ind2}for kb in range({k16}):")
            word = 0 if dynamic else int(act.zero_point) * 0x01010101   # 4 zero-point bytes (dynamic: 0)
            word = word - (1 << 32) if word >= 1 << 31 else word
            for g0 in range(0, mr, 16):
                size = min(16, mr - g0)
                if mr == 1:
                    val = qvec("p", 16, "kb * 16") if nrows else f"T.Broadcast(T.int32({word}), 4)"
                    out.append(f"{ind2}    {q}_r[p, T.ramp(kb * 4, 1, 4)] = {val}")
                    continue
                if size == 1:   # a lone last row: its 4 dwords one by one
                    row = f"p * {mr} + {g0}"
                    for c in range(4):
                        val = qvec(row, 4, f"kb * 16 + {c * 4}") if g0 < nrows else f"T.int32({word})"
                        out.append(f"{ind2}    {q}_w[p, kb * 4 + {c}, {g0}] = {val}")
                    continue
                for i in range(size):
                    row = f"p * {mr} + {g0 + i}"
                    val = qvec(row, 16, "kb * 16") if g0 + i < nrows else f"T.Broadcast(T.int32({word}), 4)"
                    out.append(f"{ind2}    d{g0 + i}: T.let = {val}")
                for c in range(4):
                    idx = ", ".join(str(i * 4 + c) for i in range(size))
                    out.append(f"{ind2}    {q}_w[p, kb * 4 + {c}, T.ramp({g0}, 1, {size})] = "
                               f"T.Shuffle([{', '.join(f'd{g0 + i}' for i in range(size))}], [{idx}])")
        if k % 16 or k4 * 4 > k:   # the last inputs one by one, then the zero-point padding
            out += [f"{ind2}for i in range({nrows}):"]
            if k % 16:
                out += [f"{ind2}    for kk in range({k16 * 16}, {k}):",
                        f"{ind2}        {q}[p, kk // 4, i * 4 + kk % 4] = "
                        f"{_qexpr(f'{x}[p * {mr} + i, kk]', inv(f'p * {mr} + i'), zpf(f'p * {mr} + i'))}"]
            if k4 * 4 > k:
                out += [f"{ind2}    for kk in range({k}, {k4 * 4}):",
                        f"{ind2}        {q}[p, kk // 4, i * 4 + kk % 4] = {zpu(f'p * {mr} + i')}"]
            if nrows < mr:
                pad = "T.uint8(0)" if dynamic else f"T.uint8({int(act.zero_point)})"
                out += [f"{ind2}for i in range({nrows}, {mr}):", f"{ind2}    for kk in range({k16 * 16}, {k4 * 4}):",
                        f"{ind2}        {q}[p, kk // 4, i * 4 + kk % 4] = {pad}"]
        return out

    def chunk_body(check: bool, ind2: str) -> list[str]:
        """Rows p*mr + g*16 .. +15 (one 16-row chunk of a tall panel); check: rows may pass M
        (the last panel), so reads are clamped and rows past M get padding."""
        base = f"p * {mr} + g * 16"
        pad = "T.uint8(0)" if dynamic else f"T.uint8({int(act.zero_point)})"
        out = []
        if dynamic:
            out += [f"{ind2}for i in range(16):", f"{ind2}    r: T.let = {base} + i"]
            body = row_params_one(ind2 + "        " if check else ind2 + "    ")
            if check:
                out += [f"{ind2}    if r < {m}:", *body, f"{ind2}    else:", f"{ind2}        xs[r] = T.float32(1)",
                        f"{ind2}        zq[r] = 0"]
            else:
                out += body
        if k16:
            out.append(f"{ind2}for kb in range({k16}):")
            for i in range(16):
                row = f"{base} + {i}"
                val = qvec(row, 16, "kb * 16")
                if check:
                    val = (f"T.Select({row} < {m}, {qvec(f'T.min({row}, {m - 1})', 16, 'kb * 16')}, "
                           f"T.Broadcast(T.int32({word}), 4))")
                out.append(f"{ind2}    d{i}: T.let = {val}")
            for c in range(4):
                idx = ", ".join(str(i * 4 + c) for i in range(16))
                out.append(f"{ind2}    {q}_w[p, kb * 4 + {c}, T.ramp(g * 16, 1, 16)] = "
                           f"T.Shuffle([{', '.join(f'd{i}' for i in range(16))}], [{idx}])")
        if k4 * 4 > k16 * 16:   # the last inputs one by one, then the zero-point padding
            rr = f"T.min({base} + i, {m - 1})"
            val = _qexpr(f"{x}[{rr}, T.min(kk, {k - 1})]", inv(rr), zpf(rr))
            cond = f"kk < {k}" + (f" and {base} + i < {m}" if check else "")
            fill = f"T.Select({base} + i < {m}, {zpu(rr)}, {pad})" if check else zpu(rr)
            out += [f"{ind2}for i in range(16):", f"{ind2}    for kk in range({k16 * 16}, {k4 * 4}):",
                    f"{ind2}        {q}[p, kk // 4, (g * 16 + i) * 4 + kk % 4] = T.Select({cond}, {val}, {fill})"]
        return out

    word = 0 if dynamic else int(act.zero_point) * 0x01010101   # 4 zero-point bytes (dynamic: 0)
    word = word - (1 << 32) if word >= 1 << 31 else word
    if k16 and mr == 1:
        L.append(f'{ind}{q}_r = T.decl_buffer(({mb}, {k4}), "int32", data={q}.data)')
    elif k16:
        L.append(f'{ind}{q}_w = T.decl_buffer(({mb}, {k4}, {mr}), "int32", data={q}.data)')
    last = m - (mb - 1) * mr
    if mr > 16 and mr % 16 == 0:   # tall panels (token tiles): one task per 16-row chunk
        g = mr // 16
        L += [f"{ind}for t in T.parallel({mb * g}):", f"{w}p: T.let = t // {g}", f"{w}g: T.let = t % {g}"]
        if last == mr:
            L += chunk_body(False, w)
        elif mb == 1:
            L += chunk_body(True, w)
        else:
            L += [f"{w}if p < {mb - 1}:", *chunk_body(False, w2), f"{w}else:", *chunk_body(True, w2)]
        return L
    L.append(f"{ind}for p in T.parallel({mb}):")
    last = m - (mb - 1) * mr
    if last == mr:
        L += rows_body(mr, w)
    elif mb == 1:
        L += rows_body(last, w)
    else:
        L += [f"{w}if p < {mb - 1}:"] + rows_body(mr, w2) + [f"{w}else:"] + rows_body(last, w2)
    return L


def quantize_kernel(m: int, k: int, mr: int, act: ActQuant, symbol: str = "main"):
    """Stand-alone PrimFunc ``(X[m, k] float32) -> q [, xs, zq]`` (outputs last, in that order)."""
    mb, k4, mp = panel_dims(m, k, mr)
    args = [f'X: T.Buffer(({m}, {k}), "float32")', f'q: T.Buffer(({mb}, {k4}, {mr * 4}), "uint8")']
    if act.mode == "dynamic":
        args += [f'xs: T.Buffer(({mp},), "float32")', f'zq: T.Buffer(({mp},), "int32")']
    src = "\n".join(["@T.prim_func", f"def main({', '.join(args)}):",
                     f'    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8}})',
                     *quantize_stage(m, k, mr, act)]) + "\n"
    return parse_prim_func(src)


def unpanel(q: np.ndarray, m: int, k: int) -> np.ndarray:
    """The [m, k] uint8 matrix inside a panel(mr) array (tests and debugging)."""
    mb, k4, mr4 = q.shape
    mr = mr4 // 4
    return q.reshape(mb, k4, mr, 4).transpose(0, 2, 1, 3).reshape(mb * mr, k4 * 4)[:m, :k]
