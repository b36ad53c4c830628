"""What a block of a sparse int8 conv weight is (numpy only: the pruning side imports it too).

The int8 conv kernels reduce over K = KH*KW*C4*4 in the order (tap, channel), where
tap = kh*KW + kw and the channel count C is zero-padded to C4*4: the weight seen as
[O, KH, KW, C4*4] -> [O, K]. Four consecutive entries of K are four consecutive input
channels at one tap, the 4 bytes vpdpbusd sums into one int32 lane (spdy/qscheme.py), and
the 64 bytes one activation load brings are [16 pixels x those 4 channels] (conv_pack.py).
A block of format "bsrRx4" is R consecutive output channels times one such group of 4:
column group g = tap * C4 + c // 4 (the same definition as spdy.formats.column_groups).
Output channels are zero-padded to a multiple of R; a block is kept by the kernels when any
of its entries is nonzero, and pruned by ``block_mask_np`` by least L2 norm, globally over
the layer, round(sparsity * blocks) blocks, ties broken by position (stable sort).
Grouped convs use the per-group weight [O, C/groups, KH, KW] (their kernels are dense).
A 2-D weight [O, K] is treated as a 1x1 conv (groups of 4 consecutive columns).
"""
from __future__ import annotations

import numpy as np

#: block rows R of each sparse int8 format (blocks span 4 inputs)
BLOCK_ROWS = {"bsr16x4": 16, "bsr4x4": 4, "bsr1x4": 1}


def int8_format(fmt: str) -> str:
    """"dense" or a key of BLOCK_ROWS, from either spelling ("bsr4x4" or "bsr4x4-int8")."""
    base = fmt[:-5] if isinstance(fmt, str) and fmt.endswith("-int8") else fmt
    if base in ("dense", "int8"):
        return "dense"
    if base not in BLOCK_ROWS:
        raise ValueError(f"unknown int8 weight format {fmt!r}; use 'dense' or one of {sorted(BLOCK_ROWS)} "
                         "(optionally with the '-int8' suffix)")
    return base


def _as4d(weight: np.ndarray) -> np.ndarray:
    w = np.asarray(weight)
    if w.ndim == 2:
        return w[:, :, None, None]
    if w.ndim != 4:
        raise ValueError(f"expected a conv weight [O, C, KH, KW] or a matrix [O, K], got shape {w.shape}")
    return w


def int8_conv_matrix(weight: np.ndarray) -> np.ndarray:
    """The weight as the kernels' [O, K] matrix, K = KH*KW*C4*4 in (tap, channel) order.

    Padded channels are zero. Same dtype as the input."""
    w = _as4d(weight)
    o, c, kh, kw = w.shape
    c4 = -(-c // 4)
    m = np.zeros((o, kh, kw, c4 * 4), w.dtype)
    m[..., :c] = w.transpose(0, 2, 3, 1)
    return m.reshape(o, kh * kw * c4 * 4)


def int8_conv_blocks(weight: np.ndarray) -> np.ndarray:
    """[O, K4, 4]: entry [o, g, t] is channel 4*(g % C4) + t at tap g // C4 (module doc)."""
    m = int8_conv_matrix(weight)
    return m.reshape(m.shape[0], -1, 4)


def block_scores_np(weight: np.ndarray, fmt: str) -> np.ndarray:
    """Squared L2 norm of every block, [ceil(O/R), K4], float64."""
    base = int8_format(fmt)
    if base == "dense":
        raise ValueError("format 'dense' has no blocks; give one of " + ", ".join(sorted(BLOCK_ROWS)))
    r = BLOCK_ROWS[base]
    b = int8_conv_blocks(np.asarray(weight, np.float64))
    o, k4, _ = b.shape
    nb = -(-o // r)
    sq = np.zeros((nb * r, k4), np.float64)
    sq[:o] = (b * b).sum(axis=2)
    return sq.reshape(nb, r, k4).sum(axis=1)


def block_keep_to_mask(keep: np.ndarray, weight_shape, fmt: str) -> np.ndarray:
    """[ceil(O/R), K4] bool keep-mask -> 0/1 float32 mask of the weight's shape."""
    r = BLOCK_ROWS[int8_format(fmt)]
    shape = tuple(int(d) for d in weight_shape)
    w4 = _as4d(np.zeros(shape, np.float32))
    o, c, kh, kw = w4.shape
    c4 = -(-c // 4)
    rows = np.repeat(np.asarray(keep, bool), r, axis=0)[:o]              # [O, K4]
    full = np.repeat(rows, 4, axis=1).reshape(o, kh, kw, c4 * 4)[..., :c]  # [O, KH, KW, C]
    return full.transpose(0, 3, 1, 2).astype(np.float32).reshape(shape)


def block_mask_np(weight: np.ndarray, fmt: str, sparsity: float) -> np.ndarray:
    """0/1 float32 mask of weight's shape pruning the round(sparsity * #blocks) blocks of least
    L2 norm (the blocks the sparse int8 conv kernels skip)."""
    if not 0.0 <= float(sparsity) <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    score = block_scores_np(weight, fmt)
    n_prune = int(round(float(sparsity) * score.size))
    keep = np.ones(score.size, bool)
    keep[np.argsort(score.reshape(-1), kind="stable")[:n_prune]] = False
    return block_keep_to_mask(keep.reshape(score.shape), np.shape(weight), fmt)
