"""Dense int8 Linear on AMX tiles (spdy/runtime/int8/linear_amx.py) against the integer
reference: exact accumulators over row, column and K tails, every epilogue, both activation
modes; and when a layer offers the tiles."""
from __future__ import annotations

import numpy as np
import pytest

from ._amx_util import amx_target, needs_amx
from ._linear_ref import DYNAMIC, STATIC, accumulator, assert_close, linear_ref, random_weight, run


def _layer(m, k, n, *, act, bias=None, residual=False, activation="none", raw=False, seed=0, threads=1):
    from spdy.runtime.int8 import int8_linear_layer
    rng = np.random.default_rng(seed)
    w = random_weight(rng, n, k)
    ws = (rng.random(n) * 0.01 + 1e-3).astype(np.float32)
    layer = int8_linear_layer((m, k), w, ws, bias, has_residual=residual, activation=activation, act=act,
                              fmt="dense", target=amx_target(), raw_int32=raw, num_threads=threads)
    x = rng.standard_normal((m, k)).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32) if residual else None
    return layer, x, w, ws, res


# M past the last row tile, N past the last column tile, K not a multiple of 4 or of 64; the
# tasks split over 1, 2 or 3 workers (the last one's share short, or workers without a task)
@pytest.mark.parametrize("m,k,n,mr,nv,threads", [(1, 40, 33, 1, 1, 1), (37, 70, 50, 2, 2, 2), (16, 256, 16, 1, 1, 3),
                                                 (33, 384, 70, 2, 1, 3), (20, 52, 40, 1, 2, 2)])
@pytest.mark.parametrize("act", [STATIC, DYNAMIC], ids=["static", "dynamic"])
def test_amx_accumulator_exact(m, k, n, mr, nv, threads, act):
    needs_amx()
    from spdy.runtime.int8.linear import DenseParams
    layer, x, w, _, _ = _layer(m, k, n, act=act, raw=True, threads=threads)
    got = run(layer, DenseParams(mr, nv, amx=True), x, tgt=amx_target())
    np.testing.assert_array_equal(got, accumulator(x, w, act))


@pytest.mark.parametrize("m,k,n,act,bias,residual,activation", [
    (40, 24, 40, STATIC, True, True, "gelu"),
    (17, 33, 17, DYNAMIC, True, False, "relu6"),
    (64, 128, 96, STATIC, False, True, "none"),
    (5, 24, 36, DYNAMIC, True, True, "silu"),
])
def test_amx_epilogue(m, k, n, act, bias, residual, activation):
    needs_amx()
    from spdy.runtime.int8.linear import DenseParams
    b = np.random.default_rng(1).standard_normal(n).astype(np.float32) if bias else None
    layer, x, w, ws, res = _layer(m, k, n, act=act, bias=b, residual=residual, activation=activation, threads=2)
    got = run(layer, DenseParams(2, 2, amx=True), x, res, tgt=amx_target())
    assert_close(got, linear_ref(x, w, ws, act, b, res, activation))


def test_layers_offer_tiles_where_the_target_has_them():
    needs_amx()
    from ._linear_ref import target
    from spdy.runtime.int8 import int8_linear_layer
    w = random_weight(np.random.default_rng(0), 64, 96)
    ws = np.full(64, 0.01, np.float32)

    def layer(m, tgt):
        return int8_linear_layer((m, 96), w, ws, None, has_residual=False, activation="none", act=STATIC,
                                 fmt="dense", target=tgt)
    plain, tiles, gemv = layer(64, target()), layer(64, amx_target()), layer(1, amx_target())
    assert not any(p.amx for p in plain.candidates()) and plain.signature != tiles.signature
    assert tiles.default().amx and any(not p.amx for p in tiles.candidates())
    assert not gemv.default().amx      # one row would fill 1/16 of a tile: VNNI by default
