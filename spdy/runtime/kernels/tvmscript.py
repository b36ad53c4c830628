"""Parse generated TVMScript text into a PrimFunc.

Why text: our kernels are templates whose loop nests change shape with the schedule
parameters and the tails (a tile loop for the full tiles, another for the remainder), which
is clumsy to express with Python control flow inside ``@T.prim_func``. Generating the source
is explicit, easy to print when a kernel misbehaves, and parses in a few milliseconds.
"""
from __future__ import annotations

import textwrap


class _NoStackInspect:
    """``inspect`` whose ``stack()`` is empty.

    TVMScript's ``T.prim_func`` decorator calls ``inspect.stack()``, which resolves the
    source file of every frame; deep inside torch.export's frontend that cost ~0.2 s per
    kernel (13 s for a ResNet-18). The stack is only used when decorating a Python function
    (closure variables), never when parsing source text as we do.
    """

    def __init__(self, real):
        self._real = real

    def stack(self, context=1):
        return []

    def __getattr__(self, name):
        return getattr(self._real, name)


_CACHE: dict[str, object] = {}


def parse_prim_func(src: str):
    """Parse one ``@T.prim_func def main(...)`` written against ``T`` (tvm.script.tirx).

    Results are cached by source text (layers with equal shapes generate equal text up to
    the symbol, which callers set in the source; PrimFuncs are immutable, so sharing is safe).
    """
    hit = _CACHE.get(src)
    if hit is not None:
        return hit
    import inspect
    from tvm.script import parser
    import tvm.script.tirx as T
    from tvm.tirx.script.parser import entry
    saved = entry.inspect
    entry.inspect = _NoStackInspect(inspect)
    try:
        func = parser.parse(_wrap_root(textwrap.dedent(src)), extra_vars={"T": T}, s_tir=True)
    finally:
        entry.inspect = saved
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[src] = func
    return func


def _wrap_root(src: str) -> str:
    """Put the function body (after ``T.func_attr``) under a root ``T.sblock``.

    Relax analyses (HasReshapePattern, op-pattern annotation) expect a PrimFunc body to be a
    block realize; hand-written loop nests without one crash them.
    """
    lines = src.split("\n")
    i = next(k for k, ln in enumerate(lines) if "T.func_attr" in ln)
    body = ["    " + ln if ln.strip() else ln for ln in lines[i + 1:]]
    out = "\n".join(lines[: i + 1] + ['    with T.sblock("root"):'] + body)
    return out.replace("@T.prim_func\n", "@T.prim_func(s_tir=True)\n")


def f32(x: float) -> str:
    """A float32 literal for TVMScript."""
    return f"T.float32({float(x)!r})"


def activation_expr(act: str, v: str) -> str:
    """TVMScript for act(v), act one of spdy.activations.ACTIVATIONS; ``v`` must be a cheap
    expression (it is repeated; LLVM computes it once)."""
    if act == "none":
        return v
    if act == "relu":
        return f"T.max({v}, T.float32(0))"
    if act == "relu6":
        return f"T.min(T.max({v}, T.float32(0)), T.float32(6))"
    if act == "gelu":  # erf GELU, as torch.nn.GELU() default
        return gelu_expr(v)
    if act == "sigmoid":
        return sigmoid_expr(v)
    if act == "silu":
        return f"({v} * {sigmoid_expr(v)})"
    if act == "hardsigmoid":
        return f"(T.min(T.max({v} + T.float32(3), T.float32(0)), T.float32(6)) * T.float32(0.16666666666666666))"
    if act == "hardswish":
        return f"({v} * {activation_expr('hardsigmoid', v)})"
    raise ValueError(f"unknown activation {act!r}")


def sigmoid_expr(v: str) -> str:
    """TVMScript for sigmoid(v) = (1 + tanh(v / 2)) / 2 (tanh_expr: no exp, no select, so it
    is the same text for a scalar or a vector ``v``, as the int8 kernels' epilogues need).
    The error is absolute, within 2e-7 (as onnxruntime's MLAS logistic): far below -16 it
    returns ~1e-7, not ~0, so SiLU there is off by |v| * 1e-7."""
    return f"(T.float32(0.5) + T.float32(0.5) * {tanh_expr(f'(({v}) * T.float32(0.5))')})"


# tanh(x) as x P(x^2) / Q(x^2) on [-7.905, 7.905] (tanh is +-1 in float32 beyond), the
# coefficients Eigen uses for float: max abs error 3.4e-7 evaluated in float32 (tested).
_TANH_NUM = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
             1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_DEN = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_TANH_CLAMP = 7.90531110763549805


def tanh_expr(x: str) -> str:
    """TVMScript for a vectorizable tanh(x); ``x`` should be cheap (it is repeated)."""
    xc = f"T.max(T.min({x}, T.float32({_TANH_CLAMP!r})), T.float32({-_TANH_CLAMP!r}))"
    x2 = f"({xc} * {xc})"
    return f"({xc} * {_horner(_TANH_NUM, x2)} / {_horner(_TANH_DEN, x2)})"


# erf(x) as a rational function of x on [-4, 4] (erf is +-1 in float32 beyond): numerator odd
# of degree 13, denominator even of degree 8 (the coefficients Eigen uses for float). Max error
# 4.2e-7 against math.erf. Why not T.erf: LLVM lowers it to a scalar libm call per element,
# which made a GELU-fused Linear 3x slower than the same GEMM without it; this is plain
# multiply-adds and one division, which vectorize with the rest of the epilogue.
_ERF_NUM = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
            -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_DEN = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
            -1.42647390514189e-02)


def _horner(coeffs, x2: str) -> str:
    expr = f"T.float32({coeffs[0]!r})"
    for c in coeffs[1:]:
        expr = f"({expr} * {x2} + T.float32({c!r}))"
    return expr


def erf_expr(x: str) -> str:
    """TVMScript for a vectorizable erf(x); ``x`` should be cheap (it is repeated; LLVM CSEs it)."""
    xc = f"T.max(T.min({x}, T.float32(4)), T.float32(-4))"
    x2 = f"({xc} * {xc})"
    return f"({xc} * {_horner(_ERF_NUM, x2)} / {_horner(_ERF_DEN, x2)})"


def gelu_expr(v: str) -> str:
    """TVMScript for GELU(v) = v/2 (1 + erf(v / sqrt 2))."""
    return f"({v} * T.float32(0.5) * (T.float32(1) + {erf_expr(f'({v}) * T.float32(0.7071067811865476)')}))"
