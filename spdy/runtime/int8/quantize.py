"""Quantize float32 activations to uint8 (spdy/qscheme.py) into the layout the int8 GEMMs read.

Layout "panel(mr)": ``q[MB, K4, mr * 4]`` with ``MB = ceil(M / mr)``, ``K4 = ceil(K / 4)``:
byte ``q[m // mr, k // 4, (m % mr) * 4 + k % 4]`` holds x[m, k]. So the 4 consecutive inputs
one ``vpdpbusd`` lane reduces are one dword, and
  - mr = 1 is plain row-major ``[M, Kp]``;
  - mr = MR (the dense/16x4 register tile) makes a tile's MR rows of one k step one
    contiguous run (one cache line for MR = 16), streamed in order by the k loop;
  - mr = Mp (all rows, padded to whole vectors) is ``[K4, Mp, 4]``: 16 tokens of one k
    group are one 64-byte vector, what the lanes-over-tokens sparse kernels load.
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

    The caller declares q ``[MB, K4, mr*4]`` uint8 (and xs/zq ``[Mp]``) as buffers or parameters."""
    mb, k4, mp = panel_dims(m, k, mr)
    kf = k // 4
    dynamic = act.mode == "dynamic"
    if dynamic:
        inv, zpf, zpu = "inv", "zpf", 'T.Cast("uint8", zi)'
    else:
        inv, zpf = _lit(inv_scale(act.scale)), _lit(int(act.zero_point))
        zpu = f'T.uint8({int(act.zero_point)})'
    dst = lambda kk, j: f"{q}[r // {mr}, {kk}, (r % {mr}) * 4 + {j}]"  # noqa: E731
    L = [f"{ind}for r in T.parallel({m}):"]
    w = ind + "    "
    if dynamic:
        k16 = k // 16
        L += [f'{w}mn = T.alloc_buffer((16,), "float32")', f'{w}mx = T.alloc_buffer((16,), "float32")',
              f"{w}for l in T.vectorized(16):", f"{w}    mn[l] = T.float32(0)", f"{w}    mx[l] = T.float32(0)"]
        if k16:
            L += [f"{w}for kb in range({k16}):", f"{w}    for l in T.vectorized(16):",
                  f"{w}        mn[l] = T.min(mn[l], {x}[r, kb * 16 + l])",
                  f"{w}        mx[l] = T.max(mx[l], {x}[r, kb * 16 + l])"]
        if k % 16:
            L += [f"{w}for l in range({k % 16}):",
                  f"{w}    mn[l] = T.min(mn[l], {x}[r, {k16 * 16} + l])",
                  f"{w}    mx[l] = T.max(mx[l], {x}[r, {k16 * 16} + l])"]
        lo = "mn[0]"
        hi = "mx[0]"
        for i in range(1, 16):
            lo, hi = f"T.min({lo}, mn[{i}])", f"T.max({hi}, mx[{i}])"
        L += [f"{w}span: T.let = ({hi} - {lo}) / T.float32(255)",
              f"{w}s: T.let = T.Select(span > T.float32(0), span, T.float32(1))",
              f"{w}zi: T.let = T.Cast(\"int32\", T.min(T.max(T.nearbyint((T.float32(0) - {lo}) / s), "
              f"T.float32(0)), T.float32(255)))",
              f"{w}xs[r] = s", f"{w}zq[r] = zi",
              f"{w}inv: T.let = T.float32(1) / s", f"{w}zpf: T.let = T.Cast(\"float32\", zi)"]
    k16 = k // 16
    if k16:  # 16 inputs per vector, staged in bytes, stored as 4 dwords (LLVM otherwise
        # re-vectorizes a 4-wide loop across k and scatters single bytes: 8x slower)
        L += [f'{w}qb = T.alloc_buffer((16,), "uint8")', f"{w}for kb in range({k16}):",
              f"{w}    for l in T.vectorized(16):", f"{w}        qb[l] = {_qexpr(f'{x}[r, kb * 16 + l]', inv, zpf)}",
              f"{w}    for c in T.unroll(4):", f"{w}        for j in T.vectorized(4):",
              f"{w}            {dst('kb * 4 + c', 'j')} = qb[c * 4 + j]"]
    if kf > k16 * 4:
        L += [f"{w}for kk in range({k16 * 4}, {kf}):", f"{w}    for j in T.vectorized(4):",
              f"{w}        {dst('kk', 'j')} = {_qexpr(f'{x}[r, kk * 4 + j]', inv, zpf)}"]
    if k % 4:
        L += [f"{w}for j in range({k % 4}):", f"{w}    {dst(kf, 'j')} = {_qexpr(f'{x}[r, {kf * 4} + j]', inv, zpf)}",
              f"{w}for j in range({k % 4}, 4):", f"{w}    {dst(kf, 'j')} = {zpu}"]
    if mp > m:  # pad rows of the last panel: the real value 0 (dynamic: scale 1, zero point 0)
        pad = "T.uint8(0)" if dynamic else zpu
        L += [f"{ind}for r in T.parallel({m}, {mp}):", f"{w}for kk in range({k4}):",
              f"{w}    for j in T.vectorized(4):", f"{w}        {dst('kk', 'j')} = {pad}"]
        if dynamic:
            L += [f"{w}xs[r] = T.float32(1)", f"{w}zq[r] = 0"]
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
