"""Dense conv2d as (im2col +) register-tiled GEMM, NCHW in and out.

C[b, co, p] = sum_k Wpacked[g, co, k] * Col[b, p // NR, g*K + k, p % NR] with p = oh*Wo + ow vectorized:
the output stays NCHW (contiguous in p), so no layout transform is needed between layers.
1x1 stride-1 unpadded convs read the input directly (no im2col). Grouped and depthwise convs
are the same GEMM with one weight matrix per group.
"""
from __future__ import annotations

import numpy as np

from .gemm import GemmSpec, make_gemm, pack_a
from .im2col import im2col_offsets, make_im2col, make_pad, make_pad_split, split_width
from .relax_util import call_kernel, const, reshape, static_shape
from .select import choose_gemm_params


def relax_const_int32(a):
    from tvm import relax
    return relax.const(np.ascontiguousarray(a, dtype="int32"))


def conv_out_hw(H, W, KH, KW, stride, padding, dilation):
    pt, pl, pb, pr = padding
    Ho = (H + pt + pb - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    Wo = (W + pl + pr - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    return Ho, Wo


def conv_gemm_spec(x_shape, weight_shape, *, stride, padding, dilation, groups, has_bias,
                   has_residual, activation) -> tuple[GemmSpec, int, int, bool]:
    """(GemmSpec, Ho, Wo, needs_im2col) for a conv layer."""
    B, C, H, W = x_shape
    Cout, Cg, KH, KW = weight_shape
    if C != Cg * groups or Cout % groups:
        raise ValueError(f"conv shapes do not match groups={groups}: x {x_shape}, w {weight_shape}")
    Ho, Wo = conv_out_hw(H, W, KH, KW, stride, padding, dilation)
    pt, pl, pb, pr = padding
    direct = KH == KW == 1 and tuple(stride) == (1, 1) and not any(padding)
    # convs with a spatial kernel read the padded input directly (no im2col), strided ones
    # from the input split into column phases: im2col wrote a copy KH*KW/(sh*sw) times the
    # input (the 7x7/2 stem: 0.5 ms of copy beside a 0.65 ms GEMM on ResNet-18; strided
    # depthwise convs became M=1 GEMMs behind it, 22% of EfficientNet-B0 in two layers).
    # Strided 1x1 convs keep a (1x) subsampling copy: their direct form reads every other
    # input column and ran 10-40% slower.
    conv = ((Cg, KH, KW, dilation[0], dilation[1], Ho, Wo, H + pt + pb, W + pl + pr, stride[0], stride[1])
            if (tuple(stride) == (1, 1) or Cg == 1 or KH * KW > 1) and not direct else ())
    spec = GemmSpec(M=Cout // groups, N=Ho * Wo, K=Cg * KH * KW, batch=B, groups=groups,
                    a="const", b="act" if direct else ("direct" if conv else "panel"), conv=conv, bias="m" if has_bias else "none",
                    residual=has_residual, activation=activation)
    return spec, Ho, Wo, not direct


def emit_dense_conv2d(bb, x, weight: np.ndarray, bias, residual, *, stride, padding, dilation,
                      groups, activation, name, ctx):
    x_shape = static_shape(x)
    weight = np.asarray(weight, dtype="float32")
    spec, Ho, Wo, need_col = conv_gemm_spec(
        x_shape, weight.shape, stride=tuple(stride), padding=tuple(padding),
        dilation=tuple(dilation), groups=groups, has_bias=bias is not None,
        has_residual=residual is not None, activation=activation)
    B, C, H, W = x_shape
    Cout, Cg, KH, KW = weight.shape
    params = choose_gemm_params(ctx, spec)
    pt, pl, pb, pr = padding
    Hp, Wp = H + pt + pb, W + pl + pr
    split = spec.b == "direct" and stride[1] > 1   # padded and split into column phases at once
    if need_col and not split:
        xp = x
        if any(padding):
            sym = ctx.unique_symbol(f"{name}_pad")
            xp = call_kernel(bb, make_pad(B, C, H, W, tuple(padding), sym), sym, [x], (B, C, Hp, Wp))
    if split:
        sym = ctx.unique_symbol(f"{name}_pad")
        col = call_kernel(bb, make_pad_split(B, C, H, W, tuple(padding), stride[1], sym), sym, [x],
                          (B, C, Hp, stride[1], split_width(Wp, stride[1])))
    elif spec.b == "direct":
        col = xp
    elif need_col:
        sym = ctx.unique_symbol(f"{name}_im2col")
        col_fn = make_im2col(B, C, Hp, Wp, KH, KW, tuple(stride), tuple(dilation), Ho, Wo, params.nr, sym)
        nb = -(-(Ho * Wo) // params.nr)
        off = relax_const_int32(im2col_offsets(Ho, Wo, Wp, tuple(stride), params.nr))
        col = call_kernel(bb, col_fn, sym, [reshape(bb, xp, (B, C, Hp * Wp)), off],
                          (B, nb, C * KH * KW, params.nr))
    else:
        col = reshape(bb, x, (B, C, H * W))
    sym = ctx.unique_symbol(f"{name}_conv")
    args = [const(pack_a(weight.reshape(Cout, -1), groups, params.mr)), col]
    if bias is not None:
        args.append(const(np.asarray(bias, dtype="float32").reshape(-1)))
    if residual is not None:
        args.append(reshape(bb, residual, (B, Cout, Ho * Wo)))
    y = call_kernel(bb, make_gemm(spec, params, sym), sym, args, (B, Cout, Ho * Wo))
    ctx.count("conv2d.dense")
    return reshape(bb, y, (B, Cout, Ho, Wo))
