"""Block-sparse int8 Linear kernels (bsr16x4/4x4/1x4, both formulations) against the integer reference."""
from __future__ import annotations

import numpy as np
import pytest

from ._linear_ref import DYNAMIC, STATIC, accumulator, assert_close, host_has, linear_ref, random_weight, run, target


def _layer(m, k, n, fmt, *, act, bias=None, residual=False, activation="none", raw=False, tgt=None, seed=0,
           density=0.4, zero_block_rows=1):
    from spdy.runtime.int8 import int8_linear_layer
    rng = np.random.default_rng(seed)
    w = random_weight(rng, n, k, fmt=fmt, density=density, zero_block_rows=zero_block_rows)
    ws = (rng.random(n) * 0.01 + 1e-3).astype(np.float32)
    layer = int8_linear_layer((m, k), w, ws, bias, has_residual=residual, activation=activation, act=act,
                              fmt=fmt, target=tgt or target(), raw_int32=raw)
    x = rng.standard_normal((m, k)).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32) if residual else None
    return layer, x, w, ws, res


def test_blocks_roundtrip_and_sparsity():
    from spdy.runtime.int8.sparse_linear import bsr_blocks
    rng = np.random.default_rng(0)
    for fmt, r in [("bsr16x4", 16), ("bsr4x4", 4), ("bsr1x4", 1)]:
        w = random_weight(rng, 37, 30, fmt=fmt, density=0.3, zero_block_rows=1)
        b = bsr_blocks(w, fmt)
        np.testing.assert_array_equal(b.todense(), w)
        assert b.data.shape == (b.nnzb, r * 4) and b.indptr[1] == 0          # first block row empty
        nbr, k4 = -(-37 // r), -(-30 // 4)
        assert b.sparsity == pytest.approx(1 - b.nnzb / (nbr * k4))
    with pytest.raises(ValueError, match="unknown int8 sparse format 'bsr8x4'"):
        bsr_blocks(w, "bsr8x4")


# (fmt, form, tile): tails in M (last tile partial), N (last block row / group partial), K (% 4),
# and an empty first block row in every case
CASES = [("bsr16x4", "outputs", 3), ("bsr16x4", "tokens", 1), ("bsr4x4", "tokens", 2), ("bsr1x4", "tokens", 1)]


@pytest.mark.parametrize("fmt,form,tile", CASES)
@pytest.mark.parametrize("act", [STATIC, DYNAMIC], ids=["static", "dynamic"])
def test_accumulator_exact(fmt, form, tile, act):
    from spdy.runtime.int8.sparse_linear import SparseParams
    m = 20 if form == "tokens" else 7
    layer, x, w, _, _ = _layer(m, 38, 37, fmt, act=act, raw=True)
    got = run(layer, SparseParams(form, tile, 2), x)
    np.testing.assert_array_equal(got, accumulator(x, w, act))


@pytest.mark.parametrize("fmt,form,tile", CASES)
@pytest.mark.parametrize("act", [STATIC, DYNAMIC], ids=["static", "dynamic"])
def test_epilogue_bias_residual_gelu(fmt, form, tile, act):
    from spdy.runtime.int8.sparse_linear import SparseParams
    b = np.random.default_rng(2).standard_normal(35).astype(np.float32)
    layer, x, w, ws, res = _layer(18, 24, 35, fmt, act=act, bias=b, residual=True, activation="gelu")
    got = run(layer, SparseParams(form, tile, 2), x, res)
    assert_close(got, linear_ref(x, w, ws, act, b, res, "gelu"))


@pytest.mark.parametrize("fmt,form", [("bsr16x4", "outputs"), ("bsr4x4", "tokens"), ("bsr1x4", "tokens")])
def test_batch1_vector(fmt, form):
    from spdy.runtime.int8.sparse_linear import SparseParams
    b = np.linspace(-1, 1, 40).astype(np.float32)
    layer, x, w, ws, _ = _layer(1, 44, 40, fmt, act=STATIC, bias=b, activation="relu6")
    got = run(layer, SparseParams(form, 1, 2), x)
    assert_close(got, linear_ref(x, w, ws, STATIC, b, None, "relu6"))


def test_all_zero_weight_is_bias_plus_residual():
    from spdy.runtime.int8.sparse_linear import SparseParams
    b = np.arange(20, dtype=np.float32) - 10
    layer, x, w, ws, res = _layer(5, 16, 20, "bsr4x4", act=STATIC, bias=b, residual=True, activation="relu",
                                  density=0.0)
    assert layer.blocks.nnzb == 0 and layer.level_bp == 10000
    got = run(layer, SparseParams("tokens", 1, 2), x, res)
    np.testing.assert_allclose(got, np.maximum(res + b, 0), rtol=1e-6)


@pytest.mark.parametrize("mcpu,flag,fmt,form", [("alderlake", "avx_vnni", "bsr16x4", "outputs"),
                                                ("haswell", "avx2", "bsr4x4", "tokens")])
def test_other_isas(mcpu, flag, fmt, form):
    if not host_has(flag):
        pytest.skip(f"this CPU cannot run {mcpu} code")
    from spdy.runtime.int8.sparse_linear import SparseParams
    tgt = target(mcpu)
    b = np.linspace(-1, 1, 21).astype(np.float32)
    layer, x, w, ws, res = _layer(9, 30, 21, fmt, act=STATIC, bias=b, residual=True, tgt=tgt)
    got = run(layer, SparseParams(form, 2, 2), x, res, tgt)
    assert_close(got, linear_ref(x, w, ws, STATIC, b, res))


def test_candidates():
    from spdy.runtime.int8.sparse_linear import SparseSpec, candidates, default_params
    from spdy.runtime.int8.snippets import Epilogue
    for fmt in ("bsr16x4", "bsr4x4", "bsr1x4"):
        spec = SparseSpec(128, 768, 768, "vnni512", fmt, STATIC, Epilogue("static"))
        c = candidates(spec, 2)
        assert c[0] == default_params(spec, 2) and len(set(c)) == len(c) <= 16
        r = {"bsr16x4": 16, "bsr4x4": 4, "bsr1x4": 1}[fmt]
        assert all((p.mr if p.form == "outputs" else r * p.mr) * p.split <= 28 for p in c)
    gemv = SparseSpec(1, 100, 64, "vnni512", "bsr16x4", STATIC, Epilogue("static"))
    d = default_params(gemv, 2)
    assert d.form == "outputs" and d.mr == 1 and d.split == 8    # one live row: 8 accumulator sets


@pytest.mark.parametrize("fmt,form,tile,split,m", [("bsr16x4", "outputs", 1, 3, 1), ("bsr1x4", "tokens", 1, 4, 20)])
def test_split_accumulators_exact(fmt, form, tile, split, m):
    from spdy.runtime.int8.sparse_linear import SparseParams
    layer, x, w, _, _ = _layer(m, 70, 37, fmt, act=DYNAMIC, raw=True, density=0.6)
    got = run(layer, SparseParams(form, tile, 2, split), x)
    np.testing.assert_array_equal(got, accumulator(x, w, DYNAMIC))
