"""Static activation calibration (minmax / percentile / mse) and the static-vs-dynamic errors."""
import numpy as np
import pytest
import torch

from spdy.errors import CalibrationError
from spdy.passes.algo.act_observer import ActObserver, dynamic_error, static_error
from spdy.passes.algo.quantize import fake_quant_act_dynamic, fake_quant_act_static
from spdy.qscheme import ActQuant, dynamic_params_np


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def exact_mse(x, scale, zp):
    return float(((fake_quant_act_static(x, scale, zp) - x).double() ** 2).mean())


def test_minmax_exact_scale_and_zero_point():
    x = torch.rand(1000, generator=gen()) * 4 - 1
    x[3], x[7] = -1.0, 3.0  # range exactly [-1, 3]
    o = ActObserver().update(x)
    s, zp = o.params("minmax")
    assert s == float(np.float32(4.0) / np.float32(255)) and zp == 64  # rint(1 / (4/255)) = rint(63.75)
    s_ref, zp_ref = dynamic_params_np(x.numpy().reshape(1, -1))  # qscheme's rule on one "row"
    assert s == float(s_ref[0]) and zp == int(zp_ref[0])
    assert ActObserver().update(torch.zeros(10)).params("minmax") == (1.0, 0)


def test_relu_inputs_get_zero_point_zero_and_the_full_range():
    x = torch.relu(torch.randn(64, 512, generator=gen(1)))
    o = ActObserver().update(x)
    for method in ("minmax", "percentile", "mse"):
        s, zp = o.params(method)
        assert zp == 0, method
        q = torch.round(x / s).clamp(0, 255)
        assert int(q.max()) == 255 if method != "minmax" else int(q.max()) >= 254
    s, _ = o.params("minmax")
    assert s == pytest.approx(float(x.max()) / 255, rel=1e-6)


def test_percentile_ignores_a_single_huge_outlier():
    x = torch.randn(200_000, generator=gen(2))
    x[123] = 1e4
    o = ActObserver().update(x)
    s_mm, _ = o.params("minmax")
    s_p, zp_p = o.params("percentile", 99.99)
    assert s_mm > 30.0
    # 99.99% of a normal lies within about +-3.9; bins round outward by ~1%
    assert 3.3 * 2 / 255 < s_p < 4.6 * 2 / 255
    assert 115 <= zp_p <= 140
    rest = torch.cat([x[:123], x[124:]])  # the values the outlier would have cost resolution
    assert exact_mse(rest, s_p, zp_p) < 0.001 * exact_mse(rest, s_mm, o.params("minmax")[1])


def test_mse_beats_minmax_on_heavy_tails_and_estimates_its_error():
    g = gen(3)  # Student's t with 3 degrees of freedom
    x = torch.randn(64, 1024, generator=g) / (torch.randn(3, 64, 1024, generator=g).square().mean(0)).sqrt()
    o = ActObserver()
    for b in x.split(16):
        o.update(b)
    e = {m: exact_mse(x, *o.params(m)) for m in ("minmax", "percentile", "mse")}
    assert e["mse"] < 0.9 * e["minmax"]  # 0.856 here, the optimum of a fine grid of (scale, zp)
    assert e["mse"] < e["percentile"]
    for m in e:  # the histogram's estimate of each choice is close to the truth
        assert static_error(o, m) == pytest.approx(e[m], rel=0.05)
        assert static_error(o, m, batches=x.split(16)) == pytest.approx(e[m], rel=1e-9)
    s_mm, _ = o.params("minmax")
    s_mse, _ = o.params("mse")
    assert s_mse < s_mm  # clips the tails


def test_mse_keeps_the_range_when_clipping_does_not_pay():
    x = torch.rand(50_000, generator=gen(4)) * 6 - 2  # uniform: every clipped value costs
    o = ActObserver().update(x)
    s_mm, zp_mm = o.params("minmax")
    s, zp = o.params("mse")
    assert s == pytest.approx(s_mm, rel=0.03) and abs(zp - zp_mm) <= 2


def test_streaming_equals_one_big_batch():
    g = gen(5)
    # ranges that grow batch after batch (the window slides), zeros, and both signs
    batches = [torch.randn(300, generator=g) * 10 ** k for k in range(-3, 4)]
    batches.append(torch.relu(torch.randn(500, generator=g)))
    one = ActObserver().update(torch.cat(batches))
    many = ActObserver()
    for b in batches:
        many.update(b.reshape(10, -1))
    for a, b in zip(one.histogram(), many.histogram()):
        assert np.array_equal(a, b)
    for m in ("minmax", "percentile", "mse"):
        assert one.params(m) == many.params(m)
    assert (one.count, one.zeros, one.min, one.max) == (many.count, many.zeros, many.min, many.max)


def test_histogram_memory_is_bounded_and_keeps_counts():
    o = ActObserver(bins_per_octave=8, octaves=4)
    o.update(torch.tensor([1e-30, 1e-3, 1.0, -2.0, 0.0, 1e30]))
    lo, hi, c = o.histogram()
    assert c.sum() == 6 and len(o._pos.counts) == 32
    assert hi[-1] > 1e30 and lo[0] < -2.0  # the largest magnitudes keep their own bins


def test_dynamic_error_streamed_and_from_batches():
    g = gen(6)
    rows = [torch.randn(8, 64, generator=g) * torch.rand(8, 1, generator=g) * 10 for _ in range(3)]
    o = ActObserver()
    for r in rows:
        o.update(r)
    ref = sum(float(((fake_quant_act_dynamic(r) - r).double() ** 2).sum()) for r in rows) / (3 * 8 * 64)
    assert dynamic_error(o) == pytest.approx(ref, rel=1e-12)
    assert dynamic_error(rows) == pytest.approx(ref, rel=1e-12)
    # rows of very different magnitudes: per-row scales win over one static range
    assert dynamic_error(o) < static_error(o, "mse", batches=rows)


def test_act_quant_and_bad_input():
    x = torch.randn(100, generator=gen(7))
    o = ActObserver(mode="dynamic").update(x)
    assert o.act_quant() == ActQuant("dynamic")
    aq = o.act_quant("static", "minmax")
    assert (aq.mode, aq.scale, aq.zero_point) == ("static", *o.params("minmax"))
    with pytest.raises(ValueError):
        ActObserver(mode="per-row")
    with pytest.raises(ValueError):
        o.params("entropy")
    with pytest.raises(ValueError):
        o.params("percentile", 0.0)
    with pytest.raises(CalibrationError):
        ActObserver().update(torch.tensor([1.0, float("nan")]))
    with pytest.raises(CalibrationError):
        ActObserver().params()
    with pytest.raises(ValueError):
        dynamic_error(ActObserver(track_dynamic=False).update(x))
