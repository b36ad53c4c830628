"""TVMScript text shared by the int8 kernels: the u8 x s8 dot step per isa, and the epilogue.

Why text snippets: the dense and the block-sparse kernels differ in their loops but do the
same two things per register: ``acc[l] += sum_j u[l, j] * s[l, j]`` over 4 consecutive
inputs j (one ``vpdpbusd``), and at the end ``y = act((acc - zp * wsum) * (x_scale *
w_scale) + bias + residual)``. Writing these once keeps the isa and the quantization scheme
(spdy/qscheme.py) in one place.

Operands of the dot step are bytes in a uint8/int8 buffer, described by a buffer name, the
leading indices and the flat offset of byte 0 along the last axis:
  ``Bcast``: the same 4 bytes for every lane (``vpbroadcastd``), e.g. one row of X;
  ``Vec``:   lane l reads bytes ``4l .. 4l+3`` (a full vector load), e.g. 16 outputs' weights.
The first operand of ``vpdpbusd`` is the UNSIGNED one: activations always go first.

Accumulators are separate small buffers (one per vector register, default scope): one large
buffer of 1 KB or more goes to TVM's workspace allocator and every dot step then loads and
stores memory (measured 2-4x slower); small ones LLVM promotes to registers. Vector values are
written inline, never bound to a name: a TVMScript assignment of a vector makes a memory slot.
"""
from __future__ import annotations

from dataclasses import dataclass

from spdy.runtime.kernels.tvmscript import activation_expr

from .features import DOT_INTRINSIC, LANES


@dataclass(frozen=True)
class Bcast:
    """4 bytes ``buf[*lead, off .. off+3]`` broadcast to every lane."""
    buf: str
    lead: tuple[str, ...]
    off: str

    def idx(self, j: str) -> str:
        return ", ".join([*self.lead, f"{self.off} + {j}"])


@dataclass(frozen=True)
class Vec:
    """Lane l takes bytes ``buf[*lead, off + 4l .. off + 4l + 3]``."""
    buf: str
    lead: tuple[str, ...]
    off: str

    def idx(self, lane: str, j: str) -> str:
        return ", ".join([*self.lead, f"{self.off} + {lane} * 4 + {j}"])


def _vnni_operand(op, isa: str, signed: bool) -> str:
    lanes = LANES[isa]
    bytes_ = f"int8x{4 * lanes}"
    if isinstance(op, Vec):
        e = f'{op.buf}.vload([{", ".join([*op.lead, op.off])}], "{"int8" if signed else "uint8"}x{4 * lanes}")'
        return e if signed else f'T.reinterpret({e}, dtype="{bytes_}")'
    word = f'T.reinterpret({op.buf}.vload([{", ".join([*op.lead, op.off])}], "{"int8" if signed else "uint8"}x4"), dtype="int32")'
    return f'T.reinterpret(T.broadcast({word}, {lanes}), dtype="{bytes_}")'


def dot_step(isa: str, acc: str, u, s, ind: str) -> list[str]:
    """Lines doing ``acc[l] += sum_j u[l, j] * s[l, j]`` (u unsigned bytes, s signed) at indent ind."""
    lanes = LANES[isa]
    intrin = DOT_INTRINSIC[isa]
    if intrin is not None:
        call = (f'T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id("{intrin}"), '
                f'{acc}.vload([0], "int32x{lanes}"), {_vnni_operand(u, isa, False)}, '
                f'{_vnni_operand(s, isa, True)}, dtype="int32x{lanes}")')
        return [f"{ind}{acc}[T.ramp(0, 1, {lanes})] = {call}"]

    def byte(op, j: int) -> str:
        i = op.idx(str(j)) if isinstance(op, Bcast) else op.idx("l", str(j))
        return f'T.Cast("int32", {op.buf}[{i}])'
    terms = " + ".join(f"{byte(u, j)} * {byte(s, j)}" for j in range(4))
    return [f"{ind}for l in T.vectorized({lanes}):", f"{ind}    {acc}[l] = {acc}[l] + {terms}"]


def zero_acc(isa: str, acc: str, ind: str) -> list[str]:
    return [f"{ind}for l in T.vectorized({LANES[isa]}):", f"{ind}    {acc}[l] = 0"]


def alloc_acc(isa: str, acc: str, ind: str) -> str:
    return f'{ind}{acc} = T.alloc_buffer(({LANES[isa]},), "int32")'


@dataclass(frozen=True)
class Epilogue:
    """What follows the int32 accumulator: the requantization and the fused float tail.

    mode "static": kernel constants ``corr[n] = zp * wsum[n]`` (int32) and
    ``sc[n] = float32(x_scale) * w_scale[n]`` (float32), both folded at compile time;
    mode "dynamic": ``wsum[n]``, ``ws[n]`` constants and the per-row ``zq[m]``, ``xs[m]`` the
    quantize stage computed; mode "int32": store the raw accumulator (tests, exactness).
    """
    mode: str
    bias: bool = False
    residual: bool = False
    activation: str = "none"

    def __post_init__(self):
        if self.mode not in ("static", "dynamic", "int32"):
            raise ValueError(f"epilogue mode must be static, dynamic or int32, got {self.mode!r}")
        if self.mode == "int32" and (self.bias or self.residual or self.activation != "none"):
            raise ValueError("the int32 (raw accumulator) epilogue takes no bias, residual or activation")
        activation_expr(self.activation, "v")  # validates the name

    @property
    def out_dtype(self) -> str:
        return "int32" if self.mode == "int32" else "float32"

    def const_args(self, np_: int) -> list[tuple[str, tuple, str]]:
        """(name, shape, dtype) of the per-output constant parameters, in call order."""
        if self.mode == "static":
            out = [("corr", (np_,), "int32"), ("sc", (np_,), "float32")]
        elif self.mode == "dynamic":
            out = [("wsum", (np_,), "int32"), ("ws", (np_,), "float32")]
        else:
            out = []
        if self.bias:
            out.append(("bias", (np_,), "float32"))
        return out

    @property
    def stage_dtype(self) -> str:
        return "int32" if self.mode == "int32" else "float32"

    def value(self, a: str, m: str, n: str) -> str:
        """Phase 1: the requantized value (+ bias) of accumulator expr ``a`` at row m, column n.

        Safe on padded rows and columns (every operand is padded), so it runs on whole tiles."""
        if self.mode == "int32":
            return a
        if self.mode == "static":
            v = f'T.Cast("float32", {a} - corr[{n}]) * sc[{n}]'
        else:
            v = f'T.Cast("float32", {a} - zq[{m}] * wsum[{n}]) * (xs[{m}] * ws[{n}])'
        return v + (f" + bias[{n}]" if self.bias else "")

    def finish(self, v: str, m: str, n: str) -> str:
        """Phase 2: ``Y[m, n]`` from the staged value v (residual, activation); real rows/columns only."""
        if self.residual:
            v = f"({v} + R[{m}, {n}])"
        return activation_expr(self.activation, v) if self.mode != "int32" else v

    def store_tile(self, stage: str, m0: str, n0: str, rows, cols: int, row_stride: int, col_stride: int,
                   ind: str) -> list[str]:
        """Phase 2 loops: ``Y[m0+i, n0+j] = finish(stage[i*row_stride + j*col_stride])`` for i < rows
        (an int or an expression), j < cols, vectorized over j (columns of Y are contiguous). One copy of the activation per
        call, so a GELU tile does not unroll into thousands of lines (TVMScript parsing is the cost)."""
        m, n = f"{m0} + i", f"{n0} + j"
        e = f"{stage}[i * {row_stride} + j * {col_stride}]"
        loop = f"{ind}    for j in T.vectorized({cols}):" if cols > 1 else f"{ind}    for j in range(1):"
        if self.activation == "none" or self.mode == "int32":
            return [f"{ind}for i in range({rows}):", loop, f"{ind}        Y[{m}, {n}] = {self.finish(e, m, n)}"]
        # the activation repeats its argument (GELU ~30 times): give it a short name
        pre = f"{e} + R[{m}, {n}]" if self.residual else e
        return [f"{ind}for i in range({rows}):", f'{ind}    ev = T.alloc_buffer(({cols},), "float32")', loop,
                f"{ind}        ev[j] = {pre}", f"{ind}        Y[{m}, {n}] = {activation_expr(self.activation, 'ev[j]')}"]


def epilogue_consts(epi: Epilogue, w_q, w_scale, act, bias, np_: int) -> list:
    """The per-output constant arrays of ``epi.const_args(np_)``, zero-padded to np_ outputs.

    wsum is over the whole (dense) int8 row; ``sc = float32(x_scale) * w_scale`` is the same
    float32 product qscheme.requant_epilogue_np forms, so static outputs match it bit for bit
    before the bias. The int32 ``acc - zp * wsum`` cannot overflow for K < 33000."""
    import numpy as np
    n = w_q.shape[0]

    def pad(a, dtype):
        out = np.zeros(np_, dtype)
        out[:n] = np.asarray(a).reshape(-1)
        return out
    wsum = np.asarray(w_q, np.int64).reshape(n, -1).sum(axis=1)
    ws = np.asarray(w_scale, np.float32).reshape(-1)
    if ws.shape[0] != n:
        raise ValueError(f"w_scale has {ws.shape[0]} entries for {n} output channels")
    out = []
    if epi.mode == "static":
        out += [pad(wsum * int(act.zero_point), np.int32), pad(np.float32(act.scale) * ws, np.float32)]
    elif epi.mode == "dynamic":
        out += [pad(wsum, np.int32), pad(ws, np.float32)]
    if epi.bias:
        out.append(pad(np.asarray(bias, np.float32), np.float32))
    return out
