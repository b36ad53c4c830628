"""Integer numpy reference of an int8 conv layer (spdy/qscheme.py's scheme), for the kernel tests."""
from __future__ import annotations

import math

import numpy as np

from spdy.qscheme import ActQuant, dynamic_params_np, quantize_np, requant_epilogue_np


def act_params(x: np.ndarray, act: ActQuant) -> tuple[float, int]:
    """(scale, zero point) the layer quantizes x with: static, or from the whole tensor."""
    if act.mode == "static":
        return float(np.float32(act.scale)), int(act.zero_point)
    s, z = dynamic_params_np(np.asarray(x, np.float32).reshape(1, -1))
    return float(s[0]), int(z[0])


def int_conv_np(xq: np.ndarray, w_q: np.ndarray, zp: int, stride, padding, dilation, groups) -> np.ndarray:
    """acc[n, o, oh, ow] (int64) of u8 xq [N,C,H,W] (padding = zp) and s8 w_q [O, C/g, KH, KW], by im2col."""
    n, c, h, w = xq.shape
    o, cg, kh, kw = w_q.shape
    pt, pl, pb, pr = padding
    sh, sw = stride
    dh, dw = dilation
    xp = np.full((n, c, h + pt + pb, w + pl + pr), zp, np.int64)
    xp[:, :, pt:pt + h, pl:pl + w] = xq
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
    og = o // groups
    out = np.empty((n, o, oh, ow), np.int64)
    for gi in range(groups):
        col = cols[:, gi * cg:(gi + 1) * cg].reshape(n, cg * kh * kw, oh * ow)
        wm = w_q[gi * og:(gi + 1) * og].reshape(og, -1).astype(np.int64)
        out[:, gi * og:(gi + 1) * og] = np.einsum("ok,nkp->nop", wm, col).reshape(n, og, oh, ow)
    return out


def _gelu(v: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return (0.5 * v * (1.0 + erf(v.astype(np.float64) / math.sqrt(2.0)))).astype(np.float32)


def _torch_act(name):
    def f(v: np.ndarray) -> np.ndarray:
        import torch
        from spdy.ir.ops import ACTIVATION_FNS
        return ACTIVATION_FNS[name](torch.from_numpy(np.ascontiguousarray(v, np.float32))).numpy()
    return f


ACTS = {"none": lambda v: v, "relu": lambda v: np.maximum(v, np.float32(0)),
        "relu6": lambda v: np.minimum(np.maximum(v, np.float32(0)), np.float32(6)), "gelu": _gelu,
        **{a: _torch_act(a) for a in ("silu", "hardswish", "sigmoid", "hardsigmoid")}}


def int8_conv_ref(x, w_q, w_scale, bias, residual, act: ActQuant, *, stride=(1, 1), padding=(0, 0, 0, 0),
                  dilation=(1, 1), groups=1, activation="none") -> np.ndarray:
    """float32 NCHW output of the int8 layer as the kernels must compute it."""
    scale, zp = act_params(x, act)
    xq = quantize_np(x, scale, zp)
    acc = int_conv_np(xq, np.asarray(w_q, np.int8), zp, stride, padding, dilation, groups)
    wsum = np.asarray(w_q, np.int64).reshape(w_q.shape[0], -1).sum(axis=1)
    y = requant_epilogue_np(acc.transpose(0, 2, 3, 1), zp, wsum, scale, np.asarray(w_scale, np.float32))
    y = y.transpose(0, 3, 1, 2)
    if bias is not None:
        y = y + np.asarray(bias, np.float32)[None, :, None, None]
    if residual is not None:
        y = y + residual
    return ACTS[activation](y.astype(np.float32))
