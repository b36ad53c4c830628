"""The activations' TVMScript (spdy/runtime/kernels/tvmscript.activation_expr) against torch, on
one vectorized loop over a wide range: the rational tanh behind sigmoid and SiLU, the erf behind
GELU, and the piecewise-linear ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spdy.activations import ACTIVATIONS
from spdy.ir.ops import ACTIVATION_FNS

from ._dense_util import run_elementwise


def _inputs() -> np.ndarray:
    x = np.concatenate([np.linspace(-12, 12, 4000), [-1e4, -100.0, -30.0, 0.0, 1e-8, 30.0, 100.0, 1e4]])
    return np.resize(x, 4096).astype("float32")


def test_tanh_polynomial_is_within_4e7_of_tanh():
    from spdy.runtime.kernels.tvmscript import tanh_expr
    x = _inputs()
    y = run_elementwise(tanh_expr, x)
    assert np.abs(y - np.tanh(x.astype(np.float64))).max() < 4e-7


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a != "none"])
def test_every_activation_matches_torch(act):
    from spdy.runtime.kernels.tvmscript import activation_expr
    x = _inputs()
    y = run_elementwise(lambda v: activation_expr(act, v), x)
    ref = ACTIVATION_FNS[act](torch.from_numpy(x).double()).numpy()
    # the polynomials' error is absolute, as MLAS's logistic: sigmoid within 2e-7 everywhere
    # (so ~1e-7 instead of ~0 far below -16), and x * that for SiLU and GELU
    bound = 5e-7 * np.maximum(1.0, np.abs(x)) + 2e-6 * np.abs(ref)
    assert np.all(np.abs(y - ref) <= bound), np.max(np.abs(y - ref) - bound)
