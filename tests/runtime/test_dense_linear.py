"""Dense Linear kernels against torch: 3-D inputs, M=1 (GEMV), tails, every epilogue."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spdy.ir.ops import ACTIVATION_FNS

from ._dense_util import build_and_run

ACT = {"none": lambda y: y, **ACTIVATION_FNS}


@pytest.mark.parametrize("shape,N,has_b,has_r,act", [
    ((1, 37), 19, True, False, "none"),          # GEMV, tails
    ((2, 5, 24), 70, True, True, "gelu"),        # 3-D input, residual
    ((13, 33), 33, False, False, "relu"),        # M tail
    ((7, 16), 48, True, True, "relu6"),
    ((3, 20), 40, True, False, "silu"),
    ((2, 20), 35, True, True, "hardswish"),
    ((5, 16), 24, False, False, "sigmoid"),
    ((1, 16), 21, True, False, "hardsigmoid"),
])
def test_linear_matches_torch(shape, N, has_b, has_r, act):
    from spdy.runtime.kernels import emit_linear
    rng = np.random.default_rng(N)
    x = rng.standard_normal(shape).astype("float32")
    w = rng.standard_normal((N, shape[-1])).astype("float32")
    b = rng.standard_normal(N).astype("float32") if has_b else None
    ref = torch.nn.functional.linear(torch.tensor(x), torch.tensor(w), None if b is None else torch.tensor(b))
    inputs = [x]
    if has_r:
        r = rng.standard_normal(tuple(ref.shape)).astype("float32")
        ref = ref + torch.tensor(r)
        inputs.append(r)
    ref = ACT[act](ref).numpy()

    def body(bb, vs, ctx):
        return emit_linear(bb, vs[0], w, b, vs[1] if has_r else None, activation=act, name="fc", ctx=ctx)
    got, ctx = build_and_run(inputs, body)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert ctx.stats.get("linear.dense") == 1
