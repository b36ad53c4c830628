"""Weight scales, RTN, and the torch fake-quant that must equal spdy.qscheme bit for bit."""
import numpy as np
import pytest
import torch

from spdy.passes.algo.quantize import (dynamic_params, fake_quant_act_dynamic,
                                       fake_quant_act_static, quantize_rtn, weight_scales)
from spdy.qscheme import dynamic_params_np, quantize_np, quantize_weight_np


def bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.int32)


def static_ref(x, s, zp):
    s = np.float32(s)
    return (quantize_np(x, s, zp).astype(np.float32) - np.float32(zp)) * s


def dynamic_ref(x2):
    s, zp = dynamic_params_np(x2)
    q = quantize_np(x2, s[:, None], zp[:, None]).astype(np.float32)
    return (q - zp[:, None].astype(np.float32)) * s[:, None]


def test_absmax_scales_and_zero_rows():
    W = torch.tensor([[1.0, -2.54, 0.5], [0.0, 0.0, 0.0], [1e-45, 0.0, 0.0]])
    s = weight_scales(W, "absmax")
    assert s.dtype == torch.float32
    assert s[0].item() == pytest.approx(2.54 / 127, rel=1e-6)
    assert s[1].item() == 1.0 and s[2].item() == 1.0  # valid and safe: 1/s is finite
    q, deq = quantize_rtn(W, s)
    assert q[0].tolist() == [50, -127, 25] and (q[1:] == 0).all()


def test_mse_scales_clip_outliers_the_outputs_do_not_feel():
    """At int8 clipping a large weight costs more than the finer grid saves, unless its
    input column carries little energy: diag(H) is what makes the search worthwhile."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(16, 256, generator=g)
    W[:, 0] = 12.0
    h = torch.rand(256, generator=g) + 0.5
    h[0] = 1e-6

    def err(s, hh):
        return (((quantize_rtn(W, s)[1] - W) ** 2) * hh).sum(dim=1)
    sa = weight_scales(W, "absmax")
    for H_diag, hh in ((None, torch.ones(256)), (h, h)):
        sm = weight_scales(W, "mse", H_diag=H_diag, grid=100, maxshrink=0.8)
        assert (sm <= sa).all() and (sm >= 0.2 * sa * (1 - 1e-6)).all()
        assert (err(sm, hh) <= err(sa, hh)).all()
    sm = weight_scales(W, "mse", H_diag=h, grid=100, maxshrink=0.8)
    assert (sm < 0.5 * sa).all()  # the outlier column is clipped
    assert err(sm, h).sum() < 0.5 * err(sa, h).sum()
    assert torch.equal(weight_scales(W, "mse", H_diag=h), weight_scales(W, "mse", H_diag=h * 3))


def test_weight_scales_bad_input():
    with pytest.raises(ValueError, match="method"):
        weight_scales(torch.ones(2, 2), "max")
    with pytest.raises(ValueError, match="NaN"):
        weight_scales(torch.tensor([[float("nan"), 1.0]]))
    with pytest.raises(ValueError, match="H_diag"):
        weight_scales(torch.ones(2, 3), "mse", H_diag=torch.ones(2))
    with pytest.raises(ValueError, match="scale"):
        quantize_rtn(torch.ones(2, 3), torch.tensor([1.0, 0.0]))


def test_rtn_grid_exact_and_matches_qscheme():
    g = torch.Generator().manual_seed(1)
    W = torch.randn(8, 3, 3, 3, generator=g) * 0.1  # conv weight: per output channel
    s = weight_scales(W.reshape(8, -1))
    q, deq = quantize_rtn(W, s)
    assert q.dtype == torch.int8 and q.shape == W.shape and deq.dtype == torch.float32
    assert int(q.abs().max()) == 127
    assert torch.equal(deq, q.to(torch.float32) * s[:, None, None, None])  # exact in float32
    # the kernels' rounding of the same weights, and of the dequantized ones, agree
    assert np.array_equal(quantize_weight_np(W.numpy(), s.numpy()), q.numpy())
    assert np.array_equal(quantize_weight_np(deq.numpy(), s.numpy()), q.numpy())


def test_static_fake_quant_matches_qscheme_bit_for_bit():
    rng = np.random.default_rng(0)
    for _ in range(60):
        s = np.float32(np.exp(rng.uniform(-12, 3)))
        zp = int(rng.integers(0, 256))
        x = (rng.standard_normal(3000) * s * rng.uniform(1, 300)).astype(np.float32)
        x[:300] = ((rng.integers(-300, 300, 300) + 0.5) * s).astype(np.float32)  # ties
        got = fake_quant_act_static(torch.from_numpy(x), float(s), zp).numpy()
        assert np.array_equal(bits(got), bits(static_ref(x, s, zp)))
        fused = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), float(s), zp, 0, 255)
        assert np.array_equal(bits(got), bits(fused.numpy()))  # torch's own rule, too
    x = np.array([1e10, -1e10, 1e30, -3e38, 3e38, np.inf, -np.inf, 0.0, -0.0], np.float32)
    with np.errstate(over="ignore"):
        ref = static_ref(x, 0.5, 3)
    assert np.array_equal(bits(fake_quant_act_static(torch.from_numpy(x), 0.5, 3).numpy()), bits(ref))


def test_static_fake_quant_rounds_scale_to_float32_and_checks_args():
    x = torch.linspace(-3, 3, 1001)
    got = fake_quant_act_static(x, 0.1, 128)  # 0.1 is not a float32: the kernels hold float32(0.1)
    assert np.array_equal(bits(got.numpy()), bits(static_ref(x.numpy(), np.float32(0.1), 128)))
    assert fake_quant_act_static(x.double(), 0.1, 128).dtype == torch.float32
    for s, zp in ((0.0, 0), (float("inf"), 0), (1.0, 256), (1.0, -1)):
        with pytest.raises(ValueError):
            fake_quant_act_static(x, s, zp)


def test_dynamic_fake_quant_matches_qscheme_bit_for_bit():
    rng = np.random.default_rng(2)
    for _ in range(60):
        M, K = int(rng.integers(1, 24)), int(rng.integers(1, 200))
        x = (rng.standard_normal((M, K)) * np.exp(rng.uniform(-10, 5, (M, 1)))
             + rng.uniform(-2, 2, (M, 1))).astype(np.float32)
        x[0] = 0.0  # all-zero row: scale 1, zp 0
        if M > 2:
            x[1] = np.abs(x[1])  # non-negative row: zp 0
        if M > 3:
            x[2] = -np.abs(x[2])  # non-positive row: zp 255
        if M > 4:  # exact ties: range [0, 255] gives scale 1, values k + 0.5
            x[3] = rng.integers(0, 255, K) + 0.5
            x[3, 0] = 255.0
        s, zp = dynamic_params(torch.from_numpy(x))
        s_ref, zp_ref = dynamic_params_np(x)
        assert np.array_equal(bits(s.numpy()), bits(s_ref)) and np.array_equal(zp.numpy(), zp_ref)
        got = fake_quant_act_dynamic(torch.from_numpy(x)).numpy()
        assert np.array_equal(bits(got), bits(dynamic_ref(x)))


def test_dynamic_fake_quant_rows_over_last_axis():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 7, generator=g) * torch.arange(1, 11).reshape(2, 5, 1)
    got = fake_quant_act_dynamic(x)
    assert got.shape == x.shape
    ref = dynamic_ref(x.reshape(10, 7).numpy()).reshape(2, 5, 7)
    assert np.array_equal(bits(got.numpy()), bits(ref))
    assert fake_quant_act_dynamic(torch.zeros(0, 4)).shape == (0, 4)
    with pytest.raises(ValueError):
        fake_quant_act_dynamic(torch.tensor(1.0))
