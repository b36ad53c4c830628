"""Pooling kernels (spdy/runtime/kernels/pool.py) against torch: window pools over padding,
strides, dilation, ceil mode and output-row tails; adaptive average pools; and the routing of a
model's pools to them (global average pooling is rowwise.row_mean_kernel, tested with the row kernels)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ._dense_util import build_and_run, run_prim_func


# (n, c, h, w, kernel, stride, padding, dilation, ceil_mode)
WINDOWS = [
    (1, 3, 112, 112, 3, 2, 1, 1, False),     # ResNet's stem pool
    (2, 5, 17, 19, 3, 2, 1, 1, True),        # ceil mode: the last window runs past the input
    (1, 4, 9, 10, 2, 2, 0, 1, False),        # DenseNet transition
    (1, 2, 13, 11, (3, 2), (1, 2), (1, 1), 2, False),   # dilation, rectangular window
    (1, 3, 8, 8, 3, 1, 1, 1, False),         # stride 1 (Inception's avg pool)
    (1, 1, 5, 33, 5, 3, 2, 1, True),
    (2, 3, 28, 28, 2, 2, 0, 1, False),       # MNIST's 2x2 pools: windows tile the rows (registers only)
    (1, 2, 9, 75, 3, 3, 0, 1, False),        # tiling, 3 columns per window, a whole block and a tail
    (1, 2, 7, 66, 2, 2, 0, 1, True),         # ceil mode: the last row's windows run past: not tiling
]


def test_row_tiling_windows_take_the_register_kernel():
    """The cases above that tile rows without overlap or padding are the register-only form;
    the others stay on the row-buffer form (both are checked against torch above)."""
    from spdy.runtime.kernels.pool import _tiles_rows
    tiling = [_tiles_rows(h, w, -(-(h - k) // s) + 1 if ceil else (h - k) // s + 1,
                          -(-(w - k) // s) + 1 if ceil else (w - k) // s + 1, (k, k), (s, s), (0, 0, 0, 0), (1, 1))
              for (_, _, h, w, k, s, p, d, ceil) in WINDOWS if isinstance(k, int) and p == 0 and d == 1]
    assert tiling == [True, True, True, False]


def _window_cases():
    """(case, op, count_include_pad): torch's avg_pool2d has no dilation, and a ceil-mode
    average that counts padding falls back to TVM, so those pairs are not generated."""
    for case in WINDOWS:
        for op, cip in (("max", True), ("avg", True), ("avg", False)):
            if op == "avg" and (case[7] != 1 or (cip and case[8])):
                continue
            yield case, op, cip


@pytest.mark.parametrize("case,op,cip", list(_window_cases()),
                         ids=[f"{op}{'' if cip else '_excl_pad'}_{WINDOWS.index(c)}" for c, op, cip in _window_cases()])
@pytest.mark.parametrize("lanes", [16, 8])
def test_window_pool_matches_torch(case, op, cip, lanes):
    from spdy.runtime.kernels.pool import window_pool_kernel
    n, c, h, w, k, s, p, d, ceil = case
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)   # noqa: E731
    x = np.random.default_rng(h * w + c).standard_normal((n, c, h, w)).astype("float32")
    xt = torch.tensor(x)
    if op == "max":
        ref = F.max_pool2d(xt, k, s, p, d, ceil_mode=ceil).numpy()
    else:
        ref = F.avg_pool2d(xt, k, s, p, ceil_mode=ceil, count_include_pad=cip).numpy()
    ph, pw = pair(p)
    f = window_pool_kernel(n, c, h, w, ref.shape[2], ref.shape[3], pair(k), pair(s), (ph, pw, ph, pw), pair(d),
                           op=op, count_include_pad=cip, lanes=lanes)
    np.testing.assert_allclose(run_prim_func(f, x, out_shape=ref.shape), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hw,out", [((15, 15), (2, 3)), ((7, 7), (7, 7)), ((6, 13), (4, 5)), ((3, 2), (5, 4))])
def test_adaptive_avg_pool_matches_torch(hw, out):
    from spdy.runtime.kernels.pool import adaptive_avg_pool_kernel
    x = np.random.default_rng(hw[0]).standard_normal((2, 3) + hw).astype("float32")
    ref = F.adaptive_avg_pool2d(torch.tensor(x), out).numpy()
    got = run_prim_func(adaptive_avg_pool_kernel(2, 3, *hw, *out), x, out_shape=ref.shape)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


class _Pools(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = F.max_pool2d(self.conv(x), 3, 2, 1)
        a = F.avg_pool2d(y, 2, ceil_mode=True, count_include_pad=False)
        g = F.adaptive_avg_pool2d(y, 1)
        return a * g + F.adaptive_avg_pool2d(y, (2, 3)).mean()


def test_a_model_with_pools_compiles_and_matches_torch():
    """Includes a non-global adaptive average pool, which TVM's legalization could not build."""
    import spdy
    torch.manual_seed(0)
    model, x = _Pools().eval(), torch.randn(2, 3, 15, 15)
    cm = spdy.compile(model, (x,), tune=False, measure=False)
    np.testing.assert_allclose(cm(x).numpy(), model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_legalizers_route_nchw_pools_to_the_kernels():
    from tvm import relax
    x = np.random.default_rng(0).standard_normal((1, 4, 12, 12)).astype("float32")

    def body(bb, vs, ctx):
        m = bb.emit(relax.op.nn.max_pool2d(vs[0], 3, 2, 1))
        a = bb.emit(relax.op.nn.avg_pool2d(m, 2, 2, 0))
        g = bb.emit(relax.op.nn.adaptive_avg_pool2d(m, 1))
        r = bb.emit(relax.op.nn.adaptive_avg_pool2d(m, (3, 3)))
        return bb.emit(relax.op.add(relax.op.multiply(a, g), r))
    got, ctx = build_and_run([x], body)
    m = F.max_pool2d(torch.tensor(x), 3, 2, 1)
    ref = (F.avg_pool2d(m, 2, 2) * F.adaptive_avg_pool2d(m, 1) + F.adaptive_avg_pool2d(m, 3)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert [ctx.stats.get(f"pool.{k}") for k in ("max", "avg", "global_avg", "adaptive_avg")] == [1, 1, 1, 1]
