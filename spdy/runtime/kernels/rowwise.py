"""Softmax, layer norm and mean over the last axis: one parallel loop over rows, vector lanes along it.

TVM 0.27 legalizes ``R.nn.softmax`` and ``R.nn.layer_norm`` to loop nests whose row reductions
the generic schedule (kernels/generic.py) can only run serially, and ``T.exp`` becomes one libm
call per element: on MiniLM at 64 tokens softmax took 12% and layer norm 4% of the forward,
more than the attention matmuls. Here each row is one task of a parallel loop; reductions keep
``ACC`` independent vector accumulators (one chain of dependent vector adds is latency-bound)
that are folded at the end of the row; exp is a polynomial (exp_expr, kept here rather than in
tvmscript.py: that file is part of the GEMM kernels' source hash, and an edit there re-times
every cached layer).

Only the last axis is handled (what every transformer uses); any other axis, a non-float32
tensor or a symbolic shape falls back to TVM's legalization and the generic schedule.
"""
from __future__ import annotations

import numpy as np

from .relax_util import call_kernel, expr_type, static_shape_or_none
from .tvmscript import _horner, f32, parse_prim_func

# exp(x) as Cephes' expf: x = n ln2 + r with n = floor(x log2e + 1/2) and ln2 split in two
# (exact n*C1), exp(r) by a degree-7 polynomial on [-ln2/2, ln2/2], times 2^n built in the
# exponent bits. Max relative error ~1.2e-7 on [-87, 88] (tested). Why not T.exp: as T.erf, LLVM
# lowers it to one scalar libm call per element, which made softmax 12% of a MiniLM forward.
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)


def exp_expr(x: str) -> str:
    """TVMScript for a vectorizable exp(x): 0 below -87.3 (where exp leaves the normal float32
    range), x clamped to 88.3 above. Never a denormal: an attention mask puts -1e9 or
    finfo.min into softmax rows, and denormal probabilities made the next matmul twice as slow."""
    xc = f"T.max(T.min({x}, T.float32(88.3)), T.float32(-87.3))"
    n = f"T.floor({xc} * T.float32(1.4426950408889634) + T.float32(0.5))"
    r = f"({xc} - {n} * T.float32(0.693359375) + {n} * T.float32(2.12194440e-4))"
    p = f"({_horner(_EXP_POLY, r)} * {r} * {r} + {r} + T.float32(1))"
    two_n = f'T.reinterpret("float32", (T.Cast("int32", {n}) + 127) * 8388608)'
    return f"T.Select({x} < T.float32(-87.3), T.float32(0), {p} * {two_n})"


FLT_MIN = 1.1754943508222875e-38   # the smallest normal float32
NEG_INF = "T.float32(-3.4028234663852886e38)"   # the lowest float32: the identity of max

#: independent vector accumulators per reduction
ACC = 4


def float_lanes(target) -> int:
    """float32 lanes of the target's widest vector register (16 with AVX-512, else 8)."""
    try:
        from tvm.target import codegen
        return 16 if bool(codegen.target_has_features("avx512f", target)) else 8
    except Exception:
        return 8


def _combine(op: str):
    return (lambda a, b: f"T.max({a}, {b})") if op == "T.max" else (lambda a, b: f"({a} + {b})")


def _tree(op: str, items: list[str]) -> str:
    """op ("T.max" or "+") over the expressions as a balanced tree."""
    comb = _combine(op)
    while len(items) > 1:
        items = [comb(items[i], items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]


def _fold(op: str, acc: str, n: int) -> str:
    """op over acc[0 .. n-1]."""
    return _tree(op, [f"{acc}[{i}]" for i in range(n)])


def _reduce(op: str, init: str, val, n: int, v: int, ind: str, acc: str = "acc") -> list[str]:
    """Lines folding val(i) for i in [0, n) into acc[0 .. ACC*v - 1] (then acc[0 .. v-1] holds
    ACC-way partial results per lane, and acc[0] the tail). ``op`` is "T.max" or "+"."""
    comb = _combine(op)
    L = [f"{ind}for l in T.vectorized({ACC * v}):", f"{ind}    {acc}[l] = {init}"]
    nb, big = n // v, n // (ACC * v)
    if big:
        L += [f"{ind}for kb in range({big}):"]
        for u in range(ACC):
            L += [f"{ind}    for l in T.vectorized({v}):",
                  f"{ind}        {acc}[{u * v} + l] = {comb(f'{acc}[{u * v} + l]', val(f'kb * {ACC * v} + {u * v} + l'))}"]
    if nb > big * ACC:
        L += [f"{ind}for kb in range({big * ACC}, {nb}):", f"{ind}    for l in T.vectorized({v}):",
              f"{ind}        {acc}[l] = {comb(f'{acc}[l]', val(f'kb * {v} + l'))}"]
    L += [f"{ind}for l in T.vectorized({v}):"]
    L += [f"{ind}    {acc}[l] = {_tree(op, [f'{acc}[{u * v} + l]' for u in range(ACC)])}"]
    if n % v:
        L += [f"{ind}for i in range({n % v}):", f"{ind}    {acc}[0] = {comb(f'{acc}[0]', val(f'{nb * v} + i'))}"]
    return L


def _vloop(n: int, lanes: int, stmt, ind: str) -> list[str]:
    """Lines running stmt(index) for index in [0, n): whole vectors of `lanes`, then a scalar
    tail (one vector of n lanes, e.g. 130, is legalized by LLVM into per-lane inserts)."""
    out = []
    if n // lanes:
        out += [f"{ind}for vb in range({n // lanes}):", f"{ind}    for l in T.vectorized({lanes}):",
                f"{ind}        {stmt(f'(vb * {lanes} + l)')}"]
    if n % lanes:
        out += [f"{ind}for l in range({n % lanes}):", f"{ind}    {stmt(f'({n // lanes * lanes} + l)')}"]
    return out


def _map(expr, n: int, v: int, ind: str) -> list[str]:
    """Lines for Y[r, i] = expr(i) over i in [0, n), vectorized by v with a scalar tail."""
    return _vloop(n, v, lambda i: f"Y[r, {i}] = {expr(i)}", ind)


def _header(symbol: str, kind: str, args: list[str]) -> list[str]:
    return ["@T.prim_func", f"def main({', '.join(args)}):",
            f'    T.func_attr({{"global_symbol": "{symbol}", "tir.noalias": True, "op_pattern": 8, '
            f'"spdy.kernel": "{kind}"}})']


def softmax_kernel(rows: int, n: int, *, lanes: int = 16, symbol: str = "main"):
    """PrimFunc (X[rows, n], Y[rows, n]) float32: Y = softmax(X) along the last axis."""
    v, ind = lanes, "        "
    L = _header(symbol, "softmax", [f'X: T.Buffer(({rows}, {n}), "float32")', f'Y: T.Buffer(({rows}, {n}), "float32")'])
    L += [f"    for r in T.parallel({rows}):", f'        acc = T.alloc_buffer(({ACC * v},), "float32")']
    L += _reduce("T.max", NEG_INF, lambda i: f"X[r, {i}]", n, v, ind)
    L += [f"{ind}mx: T.let = {_fold('T.max', 'acc', v)}"]
    L += _map(lambda i: exp_expr(f"(X[r, {i}] - mx)"), n, v, ind)
    L += _reduce("+", "T.float32(0)", lambda i: f"Y[r, {i}]", n, v, ind)
    L += [f"{ind}inv: T.let = T.float32(1) / ({_fold('+', 'acc', v)})"]
    # a normal e times 1/sum can still be denormal: flushed to 0 (see exp_expr)
    L += _map(lambda i: f"T.Select(Y[r, {i}] * inv < {f32(FLT_MIN)}, T.float32(0), Y[r, {i}] * inv)", n, v, ind)
    return parse_prim_func("\n".join(L) + "\n")


def row_mean_kernel(rows: int, n: int, *, lanes: int = 16, symbol: str = "main"):
    """PrimFunc (X[rows, n], Y[rows]) float32: the mean of each row."""
    v, ind = lanes, "        "
    L = _header(symbol, "row_mean", [f'X: T.Buffer(({rows}, {n}), "float32")', f'Y: T.Buffer(({rows},), "float32")'])
    L += [f"    for r in T.parallel({rows}):", f'        acc = T.alloc_buffer(({ACC * v},), "float32")']
    L += _reduce("+", "T.float32(0)", lambda i: f"X[r, {i}]", n, v, ind)
    L += [f"{ind}Y[r] = ({_fold('+', 'acc', v)}) * {f32(1.0 / n)}"]
    return parse_prim_func("\n".join(L) + "\n")


def layer_norm_kernel(rows: int, n: int, eps: float, *, center: bool = True, scale: bool = True,
                      lanes: int = 16, symbol: str = "main"):
    """PrimFunc (X[rows, n], [G[n]], [B[n]], Y[rows, n]) float32: Y = (X - mean) / sqrt(var + eps)
    [* G] [+ B] along the last axis, the variance taken about the mean (two passes, as torch)."""
    v, ind = lanes, "        "
    args = [f'X: T.Buffer(({rows}, {n}), "float32")']
    args += [f'G: T.Buffer(({n},), "float32")'] if scale else []
    args += [f'B: T.Buffer(({n},), "float32")'] if center else []
    L = _header(symbol, "layer_norm", args + [f'Y: T.Buffer(({rows}, {n}), "float32")'])
    L += [f"    for r in T.parallel({rows}):", f'        acc = T.alloc_buffer(({ACC * v},), "float32")']
    L += _reduce("+", "T.float32(0)", lambda i: f"X[r, {i}]", n, v, ind)
    L += [f"{ind}mean: T.let = ({_fold('+', 'acc', v)}) * {f32(1.0 / n)}"]
    L += _reduce("+", "T.float32(0)", lambda i: f"(X[r, {i}] - mean) * (X[r, {i}] - mean)", n, v, ind)
    L += [f"{ind}rstd: T.let = T.float32(1) / T.sqrt(({_fold('+', 'acc', v)}) * {f32(1.0 / n)} + {f32(eps)})"]

    def out(i):
        e = f"(X[r, {i}] - mean) * rstd"
        e = f"{e} * G[{i}]" if scale else e
        return f"{e} + B[{i}]" if center else e
    L += _map(out, n, v, ind)
    return parse_prim_func("\n".join(L) + "\n")


def _last_axis(axes, ndim: int) -> bool:
    """Whether ``axes`` (a sequence) is exactly the last of ndim axes."""
    return len(axes) == 1 and int(axes[0]) % ndim == ndim - 1


def make_rowwise_legalizers(ctx) -> dict:
    """{"relax.nn.softmax": f, "relax.nn.layer_norm": f} for LegalizeOps' custom map."""
    import tvm
    from tvm import relax

    def default_of(name):
        return tvm.ir.Op.get(name).get_attr("FLegalize")

    def rows_of(x):
        shape = static_shape_or_none(x)
        if shape is None or not shape or expr_type(x).dtype != "float32":
            return None, None
        return shape, int(np.prod(shape[:-1]))

    def softmax(bb, call):
        x = call.args[0]
        shape, rows = rows_of(x)
        if shape is None or not _last_axis([call.attrs.axis], len(shape)):
            return default_of("relax.nn.softmax")(bb, call)
        sym = ctx.unique_symbol("softmax")
        x2 = bb.normalize(relax.op.reshape(x, [rows, shape[-1]]))
        y = call_kernel(bb, softmax_kernel(rows, shape[-1], lanes=float_lanes(ctx.target), symbol=sym), sym,
                        [x2], (rows, shape[-1]))
        ctx.count("rowwise.softmax")
        return relax.op.reshape(y, list(shape))

    def layer_norm(bb, call):
        x, g, b = call.args
        shape, rows = rows_of(x)
        a = call.attrs
        if shape is None or not _last_axis(list(a.axes), len(shape)):
            return default_of("relax.nn.layer_norm")(bb, call)
        n = shape[-1]
        if (a.scale and static_shape_or_none(g) != (n,)) or (a.center and static_shape_or_none(b) != (n,)):
            return default_of("relax.nn.layer_norm")(bb, call)
        sym = ctx.unique_symbol("layer_norm")
        x2 = bb.normalize(relax.op.reshape(x, [rows, n]))
        args = [x2] + ([g] if a.scale else []) + ([b] if a.center else [])
        f = layer_norm_kernel(rows, n, float(a.epsilon), center=bool(a.center), scale=bool(a.scale),
                              lanes=float_lanes(ctx.target), symbol=sym)
        y = call_kernel(bb, f, sym, args, (rows, n))
        ctx.count("rowwise.layer_norm")
        return relax.op.reshape(y, list(shape))

    return {"relax.nn.softmax": softmax, "relax.nn.layer_norm": layer_norm}
