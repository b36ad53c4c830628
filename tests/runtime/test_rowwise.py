"""Softmax and layer norm row kernels (spdy/runtime/kernels/rowwise.py) and the polynomial exp:
numerics against torch over vector tails and masks, and the legalizer routing (last axis only)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ._dense_util import build_and_run, run_elementwise, run_prim_func


def test_exp_polynomial_is_within_a_float32_ulp_or_two():
    from spdy.runtime.kernels.rowwise import exp_expr
    n = 4096
    x = np.linspace(-87.0, 88.0, n).astype("float32")
    x[:4] = [0.0, -1e-8, 1.0, -0.5]
    y = run_elementwise(exp_expr, x)
    ref = np.exp(x.astype(np.float64))
    assert np.max(np.abs(y - ref) / ref) < 2.5e-7
    y_out = run_elementwise(exp_expr, np.array([-1e4, 1e4, -np.inf] + [0.0] * (n - 3), "float32"))
    assert y_out[0] == 0 and y_out[2] == 0 and np.isfinite(y_out[1]) and y_out[1] > 1e38


@pytest.mark.parametrize("rows,n", [(768, 64), (5, 7), (3, 77), (2, 200), (1, 1)])
def test_softmax_kernel_matches_torch(rows, n):
    from spdy.runtime.kernels.rowwise import softmax_kernel
    rng = np.random.default_rng(rows * 1000 + n)
    x = (rng.standard_normal((rows, n)) * 6).astype("float32")
    x[0, : min(3, n - 1)] = np.finfo(np.float32).min    # an additive attention mask
    if rows > 1 and n > 21:
        x[1, :n] = 0.0
        x[1, 0] = -86.0                                  # e^-86 / sum is a denormal: flushed to 0
    ref = torch.softmax(torch.tensor(x), -1).numpy()
    for lanes in (16, 8):
        got = run_prim_func(softmax_kernel(rows, n, lanes=lanes), x, out_shape=x.shape)
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-7)
        assert np.all((got == 0) | (got >= np.finfo(np.float32).tiny)), "a denormal probability"


@pytest.mark.parametrize("rows,n", [(64, 384), (3, 7), (4, 77)])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (False, False)])
def test_layer_norm_kernel_matches_torch(rows, n, center, scale):
    from spdy.runtime.kernels.rowwise import layer_norm_kernel
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((rows, n)) * 3 + 5).astype("float32")   # a mean far from 0
    g, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    args = [x] + ([g] if scale else []) + ([b] if center else [])
    got = run_prim_func(layer_norm_kernel(rows, n, 1e-5, center=center, scale=scale), *args, out_shape=x.shape)
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (n,), torch.tensor(g) if scale else None,
                                         torch.tensor(b) if center else None, 1e-5).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-5)


def test_legalizers_take_the_last_axis_and_leave_other_axes_to_tvm():
    from tvm import relax
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 20)).astype("float32")
    g = np.linspace(0.5, 1.5, 20).astype("float32")

    def body(bb, vs, ctx):
        a = bb.emit(relax.op.nn.softmax(vs[0], axis=-1))
        b = bb.emit(relax.op.nn.softmax(vs[0], axis=1))
        c = bb.emit(relax.op.nn.layer_norm(vs[0], vs[1], vs[1], axes=[-1], epsilon=1e-6))
        return bb.emit(relax.op.add(relax.op.add(a, b), c))
    got, ctx = build_and_run([x, g], body)
    t = torch.tensor(x)
    ref = (torch.softmax(t, -1) + torch.softmax(t, 1)
           + torch.nn.functional.layer_norm(t, (20,), torch.tensor(g), torch.tensor(g), 1e-6)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    assert ctx.stats.get("rowwise.softmax") == 1 and ctx.stats.get("rowwise.layer_norm") == 1


@pytest.mark.parametrize("rows,n", [(96, 56 * 56), (7, 49), (3, 1), (2, 100)])
def test_row_mean_matches_numpy(rows, n):
    from spdy.runtime.kernels.rowwise import row_mean_kernel
    x = np.random.default_rng(n).standard_normal((rows, n)).astype("float32") + 3.0
    got = run_prim_func(row_mean_kernel(rows, n), x, out_shape=(rows,))
    np.testing.assert_allclose(got, x.astype("float64").mean(axis=1), rtol=1e-5, atol=1e-6)
