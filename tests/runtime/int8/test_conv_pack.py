"""The quantize+pack kernel (phase planes) and the dynamic min/max kernel, bit for bit against
spdy.qscheme: rint half to even, clipping, padding = zero point, stride phases, C % 4 tails."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.qscheme import dynamic_params_np, quantize_np
from spdy.runtime.int8.conv_pack import QConvGeom, pack_np, pack_source, qparams_source

from ._conv_util import target


def _build(src):
    import tvm
    from spdy.runtime.int8.conv_emit import parse_kernel
    return tvm.tirx.build(parse_kernel(src), target())["main"]


def _t(a):
    import tvm
    return tvm.runtime.tensor(np.ascontiguousarray(a))


GEOMS = [QConvGeom(1, 8, 9, 20, 4, 3, 3, (1, 1), (1, 1, 1, 1)),
         QConvGeom(2, 6, 11, 13, 4, 3, 3, (2, 2), (1, 0, 2, 1)),
         QConvGeom(1, 3, 19, 19, 4, 7, 7, (2, 2), (3, 3, 3, 3)),
         QConvGeom(1, 9, 14, 10, 4, 3, 3, (1, 2), (2, 0, 2, 3), (2, 2)),
         QConvGeom(1, 4, 5, 37, 4, 1, 1),
         QConvGeom(1, 8, 9, 8, 4, 1, 1, (2, 2))]


def _used(g):
    """Mask of the plane words the kernels read (the pack leaves unused stride phases unwritten)."""
    m = np.zeros((g.n, g.c4, g.ss, g.ps), bool)
    for a, b in g.used_phases():
        m[:, :, a * g.stride[1] + b] = True
    return m.reshape(-1)


@pytest.mark.parametrize("g", GEOMS, ids=lambda g: g.key())
def test_static_pack_matches_numpy(g):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((g.n, g.c, g.h, g.w)) * 4).astype(np.float32)
    scale, zp = 0.03, 100
    sentinel = 0x5A5A5A5A
    p = _t(np.full(g.plane_words, sentinel, np.int32))
    _build(pack_source(g, "static", scale=scale, zero_point=zp))(_t(x), p)
    used = _used(g)
    np.testing.assert_array_equal(p.numpy()[used], pack_np(quantize_np(x, scale, zp), g, zp)[used])
    assert np.all(p.numpy()[~used] == sentinel)


def test_one_by_one_stride_two_packs_one_phase():
    assert QConvGeom(1, 8, 9, 8, 4, 1, 1, (2, 2)).used_phases() == [(0, 0)]
    assert QConvGeom(1, 8, 9, 8, 4, 3, 3, (2, 2)).used_phases() == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert QConvGeom(1, 8, 9, 8, 4, 3, 1, (2, 2), dilation=(2, 1)).used_phases() == [(0, 0)]


def test_rounding_is_half_to_even_and_clipped():
    g = QConvGeom(1, 4, 1, 8, 4, 1, 1)
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0, 3.49], np.float32)
    x = np.tile(x, (1, 4, 1, 1))
    p = _t(np.zeros(g.plane_words, np.int32))
    _build(pack_source(g, "static", scale=1.0, zero_point=10))(_t(x), p)
    q = p.numpy()[: g.hq * g.wq].view(np.uint8).reshape(8, 4)[:, 0]
    assert list(q) == [10, 12, 12, 10, 8, 255, 0, 13]


@pytest.mark.parametrize("numel,kind", [(3 * 7 * 5, "mixed"), (2 * 16 * 9, "positive"), (64, "zero"),
                                        (10000, "negative")])
def test_qparams_match_dynamic_rule(numel, kind):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(numel) * 3).astype(np.float32)
    x = {"mixed": x, "positive": np.abs(x) + 0.5, "zero": x * 0, "negative": -np.abs(x) - 0.1}[kind]
    qp = _t(np.zeros(3, np.float32))
    _build(qparams_source(numel))(_t(x), qp)
    scale, zp = dynamic_params_np(x.reshape(1, -1))
    got = qp.numpy()
    assert got[0] == scale[0] and got[1] == zp[0]
    assert got[2] == np.float32(1) / scale[0]


def test_dynamic_pack_uses_runtime_params():
    g = GEOMS[1]
    rng = np.random.default_rng(2)
    x = rng.standard_normal((g.n, g.c, g.h, g.w)).astype(np.float32)
    scale, zp = dynamic_params_np(x.reshape(1, -1))
    qp = np.array([scale[0], zp[0], np.float32(1) / scale[0]], np.float32)
    p = _t(np.zeros(g.plane_words, np.int32))
    _build(pack_source(g, "dynamic"))(_t(x), _t(qp), p)
    used = _used(g)
    np.testing.assert_array_equal(p.numpy()[used], pack_np(quantize_np(x, scale[0], zp[0]), g, int(zp[0]))[used])


def test_bad_mode_names_the_choices():
    with pytest.raises(ValueError, match="'static' or 'dynamic'"):
        pack_source(GEOMS[0], "per-row")
