"""Dense Linear: y = act(x @ W.T + b + residual) as the GEMM template with W pre-packed.

The weight is packed at compile time into (NB, K, NR) panels so each k step loads one
contiguous NR-wide vector; leading dims of x are flattened into M.
"""
from __future__ import annotations

import numpy as np

from .gemm import GemmSpec, make_gemm, pack_b
from .relax_util import call_kernel, const, reshape, static_shape
from .select import choose_gemm_params


def linear_gemm_spec(x_shape, weight_shape, *, has_bias, has_residual, activation) -> GemmSpec:
    N, K = weight_shape
    if x_shape[-1] != K:
        raise ValueError(f"linear: x {x_shape} does not match weight {weight_shape}")
    M = int(np.prod(x_shape[:-1])) if len(x_shape) > 1 else 1
    return GemmSpec(M=M, N=N, K=K, a="act", b="packed", bias="n" if has_bias else "none",
                    residual=has_residual, activation=activation)


def emit_dense_linear(bb, x, weight: np.ndarray, bias, residual, *, activation, name, ctx):
    x_shape = static_shape(x)
    weight = np.asarray(weight, dtype="float32")
    spec = linear_gemm_spec(x_shape, weight.shape, has_bias=bias is not None,
                            has_residual=residual is not None, activation=activation)
    params = choose_gemm_params(ctx, spec)
    sym = ctx.unique_symbol(f"{name}_linear")
    args = [reshape(bb, x, (1, spec.M, spec.K)), const(pack_b(weight.T[None], 1, params.nr))]
    if bias is not None:
        args.append(const(np.asarray(bias, dtype="float32").reshape(-1)))
    if residual is not None:
        args.append(reshape(bb, residual, (1, spec.M, spec.N)))
    y = call_kernel(bb, make_gemm(spec, params, sym), sym, args, (1, spec.M, spec.N))
    ctx.count("linear.dense")
    return reshape(bb, y, tuple(x_shape[:-1]) + (spec.N,))
