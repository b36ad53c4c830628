"""Dense int8 Linear kernel against the integer reference: exact accumulators, epilogues, tails."""
from __future__ import annotations

import numpy as np
import pytest

from ._linear_ref import DYNAMIC, STATIC, accumulator, assert_close, host_has, linear_ref, random_weight, run, target


def _layer(m, k, n, *, act, bias=None, residual=False, activation="none", raw=False, tgt=None, seed=0, threads=1):
    from spdy.runtime.int8 import int8_linear_layer
    rng = np.random.default_rng(seed)
    w = random_weight(rng, n, k)
    ws = (rng.random(n) * 0.01 + 1e-3).astype(np.float32)
    layer = int8_linear_layer((m, k), w, ws, bias, has_residual=residual, activation=activation, act=act,
                              fmt="dense", target=tgt or target(), raw_int32=raw, num_threads=threads)
    x = rng.standard_normal((m, k)).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32) if residual else None
    return layer, x, w, ws, res


# tails in M (rows past the last full tile), N (columns past the last vector) and K (not a
# multiple of 4); tasks split over 1, 2 or 3 workers (kernels/workers.py: uneven shares)
@pytest.mark.parametrize("m,k,n,mr,nv,order,threads", [(1, 40, 33, 1, 2, "nm", 1), (5, 37, 19, 2, 1, "nm", 2),
                                                       (13, 70, 50, 4, 2, "mn", 3)])
@pytest.mark.parametrize("act", [STATIC, DYNAMIC], ids=["static", "dynamic"])
def test_accumulator_exact(m, k, n, mr, nv, order, threads, act):
    from spdy.runtime.int8.linear import DenseParams
    layer, x, w, _, _ = _layer(m, k, n, act=act, raw=True, threads=threads)
    got = run(layer, DenseParams(mr, nv, order), x)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, accumulator(x, w, act))


@pytest.mark.parametrize("m,k,n,act,bias,residual,activation", [
    (7, 24, 40, STATIC, True, True, "gelu"),
    (6, 33, 17, DYNAMIC, True, False, "relu6"),
    (3, 16, 64, STATIC, False, False, "relu"),
    (1, 52, 30, DYNAMIC, True, True, "none"),      # batch-1 vector
    (5, 24, 36, STATIC, True, False, "silu"),
    (2, 20, 33, DYNAMIC, True, True, "hardswish"),
    (4, 16, 20, STATIC, False, False, "sigmoid"),
    (1, 32, 48, STATIC, True, False, "hardsigmoid"),
])
def test_epilogue(m, k, n, act, bias, residual, activation):
    from spdy.runtime.int8.linear import DenseParams
    b = np.random.default_rng(1).standard_normal(n).astype(np.float32) if bias else None
    layer, x, w, ws, res = _layer(m, k, n, act=act, bias=b, residual=residual, activation=activation)
    got = run(layer, DenseParams(2, 2), x, res)
    assert_close(got, linear_ref(x, w, ws, act, b, res, activation))


@pytest.mark.parametrize("mcpu,flag,isa", [("alderlake", "avx_vnni", "vnni256"), ("haswell", "avx2", "generic")])
def test_other_isas(mcpu, flag, isa):
    if not host_has(flag):
        pytest.skip(f"this CPU cannot run {mcpu} code")
    from spdy.runtime.int8.linear import DenseParams
    tgt = target(mcpu)
    b = np.linspace(-1, 1, 21).astype(np.float32)
    layer, x, w, ws, res = _layer(5, 30, 21, act=DYNAMIC, bias=b, residual=True, activation="relu", tgt=tgt)
    assert layer.spec.isa == isa
    got = run(layer, DenseParams(2, 2), x, res, tgt)
    assert_close(got, linear_ref(x, w, ws, DYNAMIC, b, res, "relu"))


def test_pack_weight_layout():
    from spdy.runtime.int8.linear import pack_weight
    w = np.random.default_rng(0).integers(-127, 128, (40, 10)).astype(np.int8)
    p = pack_weight(w, 16, 2)                      # tiles of 2 x 16 outputs, K padded to 12
    assert p.shape == (2, 3, 128)
    # byte (v*16 + o)*4 + j of k group g in tile t is w[t*32 + v*16 + o, 4g + j]
    assert p[1, 2, (0 * 16 + 3) * 4 + 1] == w[35, 9]
    assert p[0, 1, (1 * 16 + 5) * 4 + 2] == w[21, 6]
    assert not p[:, 2, :].reshape(2, 32, 4)[:, :, 2:].any()        # K padding (inputs 10, 11)
    assert not p[1, :, 8 * 4:].any()                                # N padding (outputs 40..63)


def test_candidates_fit_registers_and_clamp():
    from spdy.runtime.int8.linear import DenseSpec, candidate_params, default_params
    from spdy.runtime.int8.snippets import Epilogue
    big = DenseSpec(128, 3072, 768, "vnni512", STATIC, Epilogue("static"))
    cands = candidate_params(big)
    assert cands[0] == default_params(big) and len(cands) <= 16 and len(set(cands)) == len(cands)
    assert all(p.mr * p.nv <= 28 for p in cands)
    gemv = DenseSpec(1, 1000, 512, "vnni256", DYNAMIC, Epilogue("dynamic"))
    assert all(p.mr == 1 and p.mr * p.nv <= 12 for p in candidate_params(gemv))
    assert "M1:N1000:K512:vnni256:dynamic" in gemv.signature()
