"""Every weight format spdy compiles a layer to, in one registry with a dtype axis.

A format is a block layout (dense, or block-sparse rows) times a value dtype (fp32, int8).
Its name is what `formats=`, profiles, the latency table, the databases and the kernels say:
"dense", "bsr16x1", "bsr4x1", "bsr1x1" (fp32) and "dense-int8", "bsr16x4-int8",
"bsr4x4-int8", "bsr1x4-int8" (int8). An option of the SPDY grid is (format, level); the
dtype comes with the format.

A *block* is R consecutive output rows times a group of inputs, kept or pruned whole, so a
kernel can keep R outputs in registers. fp32 blocks take one input column (Rx1). int8 blocks
take 4 consecutive inputs (Rx4) because AVX-512 VNNI's vpdpbusd reduces 4 adjacent bytes per
32-bit lane (spdy/qscheme.py): a 16x1 int8 block would need a byte gather per instruction.
For a conv the 4 inputs are 4 consecutive input channels at one kernel tap (the int8 conv
kernels read [16 pixels x 4 channels] per load), so the column groups of an int8 conv weight
are (tap, channel // 4), with the channel count padded to a multiple of 4.

This module is the one definition of block geometry and magnitude masks: pruning
(apply-profile, the reconstruction database's progressive masks), the latency table and the
kernels all call it. Masks are torch tensors (numpy arrays are accepted and returned as such).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spdy.errors import SpdyError

DENSE = "dense"
FP32, INT8 = "fp32", "int8"


@dataclass(frozen=True)
class Format:
    """One weight format: block layout, value dtype and what a target needs for its kernels."""
    name: str
    block_rows: int = 1            # R: output rows per block (1 for dense)
    block_inputs: int = 1          # inputs per block: 1 (fp32) or 4 (int8: one VNNI lane)
    dtype: str = FP32
    sparse: bool = True
    why: str = ""

    @property
    def block(self) -> tuple[int, int]:
        return (self.block_rows, self.block_inputs)

    @property
    def int8(self) -> bool:
        return self.dtype == INT8


_ALL = [
    Format(DENSE, sparse=False, why="spdy's register-tiled fp32 GEMM/conv"),
    Format("bsr16x1", 16, 1, why="fp32 block-sparse, 16 outputs per vector register"),
    Format("bsr4x1", 4, 1, why="fp32 block-sparse, finer blocks"),
    Format("bsr1x1", 1, 1, why="fp32 unstructured"),
    Format("dense-int8", 1, 4, INT8, sparse=False,
           why="u8 x s8 -> s32 GEMM/conv (AVX-512 VNNI; exact int32 fallback elsewhere)"),
    Format("bsr16x4-int8", 16, 4, INT8, why="int8 block-sparse, 16 outputs x 4 inputs (one VNNI lane)"),
    Format("bsr4x4-int8", 4, 4, INT8, why="int8 block-sparse, 4 outputs x 4 inputs"),
    Format("bsr1x4-int8", 1, 4, INT8, why="int8 block-sparse, 1 output x 4 inputs"),
]
REGISTRY: dict[str, Format] = {}
FORMATS: tuple[str, ...] = ()
SPARSE_FORMATS: tuple[str, ...] = ()
INT8_FORMATS: tuple[str, ...] = ()
_ALIASES = {"int8": "dense-int8", "fp32": DENSE, "1x1": "bsr1x1", "unstructured": "bsr1x1"}


def _index() -> None:
    global FORMATS, SPARSE_FORMATS, INT8_FORMATS
    REGISTRY.clear()
    REGISTRY.update((f.name, f) for f in _ALL)
    FORMATS = tuple(REGISTRY)
    SPARSE_FORMATS = tuple(f.name for f in _ALL if f.sparse)
    INT8_FORMATS = tuple(f.name for f in _ALL if f.int8)


def register(fmt: Format) -> Format:
    """Add a format to the registry: from then on profiles, `formats=`, the latency table, the
    databases and the search know it. Its kernels must exist: an fp32 block-sparse format
    (Rx1 blocks) runs on spdy.runtime.sparse's templates, whose block height is a parameter;
    an int8 one needs its block rows in the int8 kernels' tables (spdy/runtime/int8:
    sparse_linear.SPARSE_FORMATS, conv_blocks.BLOCK_ROWS, emit.LINEAR_FORMATS)."""
    if not isinstance(fmt, Format):
        raise SpdyError(f"register takes a spdy.formats.Format, got {type(fmt).__name__}")
    if fmt.name in REGISTRY or fmt.name in _ALIASES:
        raise SpdyError(f"weight format {fmt.name!r} is already registered")
    if fmt.name == DENSE or fmt.block_rows < 1 or fmt.block_inputs < 1:
        raise SpdyError(f"format {fmt.name!r}: blocks must be at least 1x1 (and {DENSE!r} is taken)")
    _ALL.append(fmt)
    _index()
    return fmt


def unregister(name: str) -> None:
    """Remove a registered format (the built-in ones stay)."""
    if name in _BUILTIN:
        raise SpdyError(f"{name!r} is a built-in format")
    _ALL[:] = [f for f in _ALL if f.name != name]
    _index()


_BUILTIN = frozenset(f.name for f in _ALL)
_index()


def get(name: str) -> Format:
    """The format called `name` (also "bsr16x4" + dtype="int8" spelled "bsr16x4-int8")."""
    f = REGISTRY.get(_ALIASES.get(name, name)) if isinstance(name, str) else None
    if f is None:
        raise SpdyError(f"unknown weight format {name!r}; valid formats: {', '.join(FORMATS)}")
    return f


def normalize(name: str, dtype: str | None = None) -> str:
    """The registry name for a format, optionally given as (block format, dtype)."""
    if dtype in (None, FP32) or (isinstance(name, str) and name.endswith("-int8")):
        return get(name).name
    if dtype != INT8:
        raise SpdyError(f"unknown dtype {dtype!r}; valid dtypes: {FP32}, {INT8}")
    return get("dense-int8" if name == DENSE else f"{name}-int8").name


def block_shape(fmt: str) -> tuple[int, int]:
    """(rows, inputs) of one block of `fmt`."""
    return get(fmt).block


def available(int8_isa: str | None, int8_reason: str = "") -> tuple[dict[str, Format], dict[str, str]]:
    """(formats a target can run, {format: why not} for the rest).

    `int8_isa` is what spdy.runtime.int8.features.int8_support says of the target: None when
    our int8 kernels cannot run there (not x86), with `int8_reason` saying why. On x86 without
    VNNI the int8 kernels run an exact int32 fallback; whether that pays off is for the latency
    table to show, not for this check to guess.
    """
    ok, why = {}, {}
    for f in REGISTRY.values():
        if f.int8 and int8_isa is None:
            why[f.name] = f"no int8 kernels for this target: {int8_reason or 'not an x86 CPU'}"
        else:
            ok[f.name] = f
    return ok, why


#: what the search is offered when `formats` is not given: dense int8, int8 in 4x4 blocks and fp32
#: in 16x1 blocks (the fallback for a layer whose activations do not quantize well). Why not every
#: format: each offered sparse format costs ~11 timed levels per layer shape in the latency table
#: (10-27 s each to tune on a 2-core VM) and 40 reconstructions per layer in the database; all
#: seven made a MiniLM compile's table alone run past an hour. 4x4 int8 blocks were the fastest
#: int8 sparse kernel on MiniLM's 64-token linears (0.24 ms at 70% against 0.52 ms for 16x4) and
#: keep the same 16 weights per block as bsr16x1. `formats="all"` offers everything.
DEFAULT = ("dense-int8", "bsr4x4-int8", "bsr16x1")


def defaults(int8_isa: str | None) -> tuple[str, ...]:
    """The default formats on a target (module doc of DEFAULT); fp32 only without int8 kernels."""
    ok, _ = available(int8_isa)
    return tuple(f for f in DEFAULT if f in ok)


# -- block geometry ------------------------------------------------------------------------

def column_groups(fmt: str, weight_shape) -> tuple[np.ndarray, int]:
    """(group id of every column of weight.reshape(O, -1), number of groups) for `fmt`.

    fp32 formats: every column is its own group. int8 formats: 4 consecutive inputs; for a
    conv weight [O, C, KH, KW] (columns ordered c * KH*KW + tap) the group of column
    (c, tap) is tap * ceil(C/4) + c // 4: 4 channels at one tap (module doc).
    """
    f = get(fmt)
    shape = tuple(int(d) for d in weight_shape)
    k = int(np.prod(shape[1:], dtype=np.int64))
    if f.block_inputs == 1:
        return np.arange(k), k
    if len(shape) == 4:
        c, taps = shape[1], shape[2] * shape[3]
        c4 = -(-c // f.block_inputs)
        cols = np.arange(k)
        ch, tap = cols // taps, cols % taps
        return tap * c4 + ch // f.block_inputs, taps * c4
    return np.arange(k) // f.block_inputs, -(-k // f.block_inputs)


def block_scores(matrix, fmt: str, weight_shape):
    """Squared L2 norm of every block of the [O, K] weight matrix, [ceil(O/R), groups], float64."""
    import torch
    m = torch.as_tensor(matrix).to(torch.float64)
    o, k = m.shape
    br = get(fmt).block_rows
    groups, n = column_groups(fmt, weight_shape)
    nb = -(-o // br)
    rows = torch.zeros(nb * br, k, dtype=torch.float64)
    rows[:o] = m * m
    per_block_row = rows.reshape(nb, br, k).sum(dim=1)
    out = torch.zeros(nb, n, dtype=torch.float64)
    out.index_add_(1, torch.as_tensor(groups), per_block_row)
    return out


def expand_blocks(keep, fmt: str, weight_shape):
    """[ceil(O/R), groups] block keep-mask -> [O, K] element keep-mask (bool)."""
    import torch
    br = get(fmt).block_rows
    groups, _ = column_groups(fmt, weight_shape)
    o = int(weight_shape[0])
    return torch.as_tensor(keep)[:, torch.as_tensor(groups)].repeat_interleave(br, 0)[:o]


def block_mask(matrix, fmt: str, sparsity: float, weight_shape=None, prev_keep=None):
    """Keep-mask (bool, [O, K]) pruning round(sparsity * blocks) blocks of least L2 norm.

    `matrix` is the weight as [O, K] (or the weight itself, flattened); `weight_shape` its
    original shape (needed for int8 conv geometry; defaults to matrix's). Blocks already
    pruned in `prev_keep` stay pruned (progressive masks). Ties break by position, so the
    result is deterministic.
    """
    import torch
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    m = torch.as_tensor(matrix)
    shape = tuple(weight_shape) if weight_shape is not None else tuple(m.shape)
    m = m.reshape(shape[0], -1)
    score = block_scores(m, fmt, shape)
    if prev_keep is not None:
        br = get(fmt).block_rows
        groups, n = column_groups(fmt, shape)
        prev = torch.as_tensor(prev_keep).reshape(shape[0], -1).to(torch.float64)
        nb = score.shape[0]
        pad = torch.zeros(nb * br, prev.shape[1], dtype=torch.float64)
        pad[: shape[0]] = prev
        alive = torch.zeros(nb, n, dtype=torch.float64)
        alive.index_add_(1, torch.as_tensor(groups), pad.reshape(nb, br, -1).sum(dim=1))
        score = torch.where(alive > 0, score, torch.full_like(score, -1.0))
    n_prune = int(round(float(sparsity) * score.numel()))
    keep = torch.ones(score.numel(), dtype=torch.bool)
    if n_prune > 0:
        keep[torch.sort(score.reshape(-1), stable=True).indices[:n_prune]] = False
    return expand_blocks(keep.reshape(score.shape), fmt, shape)


def magnitude_mask(weight, fmt: str, sparsity: float):
    """0/1 mask of weight's shape and dtype keeping the blocks of `fmt` with the largest norm.

    The mask a user-given profile compiles with (no calibration data), and the realistic
    nonzero pattern the latency table times. numpy in, numpy out; torch in, torch out.
    """
    import torch
    is_np = isinstance(weight, np.ndarray)
    w = torch.as_tensor(weight)
    if not get(fmt).sparse or sparsity <= 0:
        mask = torch.ones_like(w)
    else:
        mask = block_mask(w.reshape(w.shape[0], -1), fmt, sparsity, tuple(w.shape)).reshape(w.shape).to(w.dtype)
    return mask.numpy() if is_np else mask


# -- user profiles -------------------------------------------------------------------------

def validate_profile(profile: dict, layer_names: list[str]) -> dict:
    """Check a user profile {layer: {"format", "sparsity"[, "dtype"]}}; one error naming every
    problem. Returns {layer: {"format": registry name, "dtype", "sparsity"}}."""
    if not isinstance(profile, dict):
        raise SpdyError(f"profile must be a dict {{layer: {{'format': ..., 'sparsity': ...}}}}, got {type(profile).__name__}")
    problems, clean = [], {}
    valid = set(layer_names)
    for name, spec in profile.items():
        if name not in valid:
            problems.append(f"unknown layer {name!r}")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{name}: spec must be a dict with 'format' and 'sparsity'")
            continue
        try:
            fmt = get(normalize(spec.get("format", "bsr16x1"), spec.get("dtype")))
        except SpdyError as e:
            problems.append(f"{name}: {e}")
            continue
        sp = spec.get("sparsity", 0.0)
        try:
            sp = float(sp)
            if not 0.0 <= sp < 1.0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"{name}: sparsity must be a number in [0, 1), got {spec.get('sparsity')!r}")
            continue
        if not fmt.sparse and sp > 0:
            problems.append(f"{name}: format {fmt.name!r} is dense; give a sparse format for sparsity {sp:g}")
            continue
        if fmt.sparse and sp == 0:
            fmt = get("dense-int8" if fmt.int8 else DENSE)
        clean[name] = entry(fmt.name, sp)
    if problems:
        raise SpdyError("invalid profile: " + "; ".join(problems) +
                        f". Valid layers: {', '.join(layer_names)}")
    return clean


def entry(fmt: str, sparsity: float) -> dict:
    """A profile entry: the registry name, its dtype and the sparsity."""
    f = get(fmt)
    return {"format": f.name, "dtype": f.dtype, "sparsity": round(float(sparsity), 4) if f.sparse else 0.0}


def is_noop(spec: dict) -> bool:
    """True when a profile entry leaves the layer as the dense fp32 model has it."""
    return spec.get("format", DENSE) == DENSE
