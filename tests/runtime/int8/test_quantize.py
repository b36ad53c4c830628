"""The quantize stage writes exactly qscheme's bytes (and dynamic scales) in every panel layout."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.qscheme import ActQuant, dynamic_params_np, quantize_np

from ._linear_ref import target


def _run(x, mr, act):
    import tvm
    from spdy.runtime.int8.quantize import panel_dims, quantize_kernel
    m, k = x.shape
    mb, k4, mp = panel_dims(m, k, mr)
    outs = [tvm.runtime.tensor(np.full((mb, k4, mr * 4), 7, np.uint8))]
    if act.mode == "dynamic":
        outs += [tvm.runtime.tensor(np.zeros(mp, np.float32)), tvm.runtime.tensor(np.zeros(mp, np.int32))]
    tvm.tirx.build(quantize_kernel(m, k, mr, act), target())["main"](tvm.runtime.tensor(x), *outs)
    return [o.numpy() for o in outs]


def _x(m, k, seed=0):
    x = (np.random.default_rng(seed).standard_normal((m, k)) * 3).astype(np.float32)
    x[0, : min(k, 6)] = [0.5, 1.5, 2.5, -0.5, -1.5, 0.0][: min(k, 6)]  # ties round half to even
    return x


# (m, k, mr): row-major (mr=1), a 4-row panel with K and M tails, a lone 17th row, a 32-token panel
@pytest.mark.parametrize("m,k,mr", [(3, 48, 1), (5, 37, 4), (19, 40, 17), (40, 35, 32)])
@pytest.mark.parametrize("act", [ActQuant("static", 0.02, 131), ActQuant("static", 0.5, 0), ActQuant("dynamic")],
                         ids=["static", "static_zp0", "dynamic"])
def test_quantize_matches_qscheme(m, k, mr, act):
    from spdy.runtime.int8.quantize import panel_dims, unpanel
    x = _x(m, k)
    outs = _run(x, mr, act)
    q = outs[0]
    if act.mode == "static":
        ref, zp = quantize_np(x, act.scale, act.zero_point), act.zero_point
    else:
        s, z = dynamic_params_np(x)
        ref, zp = quantize_np(x, s[:, None], z[:, None]), 0
        np.testing.assert_array_equal(outs[1][:m], s)
        np.testing.assert_array_equal(outs[2][:m], z)
        assert np.all(outs[1][m:] == 1) and np.all(outs[2][m:] == 0)   # pad rows: scale 1, zp 0
    np.testing.assert_array_equal(unpanel(q, m, k), ref)
    _, k4, mp = panel_dims(m, k, mr)
    full = unpanel(q, mp, k4 * 4)
    assert np.all(full[m:] == zp)                        # pad rows: the real value 0 (dynamic: 0)
    if act.mode == "static":
        assert np.all(full[:m, k:] == zp)                # pad columns: the zero point
    else:
        np.testing.assert_array_equal(full[:m, k:], np.repeat(outs[2][:m, None], k4 * 4 - k, axis=1))


def test_panel_layout():
    from spdy.runtime.int8.quantize import panel_dims, unpanel
    q = np.arange(2 * 3 * 8, dtype=np.uint8).reshape(2, 3, 8)        # mr = 2, K4 = 3
    full = unpanel(q, 4, 12)
    assert full[1, 5] == q[0, 1, 1 * 4 + 1] and full[2, 11] == q[1, 2, 3]
    assert panel_dims(5, 37, 4) == (2, 10, 8)
