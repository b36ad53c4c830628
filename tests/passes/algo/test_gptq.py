"""GPTQ: below round-to-nearest, near the brute-force optimum, exact lazy batching, masks held."""
import itertools

import pytest
import torch

from spdy.passes.algo.gptq import gptq_quantize
from spdy.passes.algo.quantize import quantize_rtn, weight_scales
from spdy.passes.algo.reconstruct import Hessian, hessian, layer_error, prepare, reconstruct_levels


def data(out=32, K=48, n=600, seed=0, mixing=1.0):
    g = torch.Generator().manual_seed(seed)
    mix = mixing * torch.randn(K, K, generator=g) / K ** 0.5 + torch.eye(K)
    X = torch.randn(n, K, generator=g) @ mix  # correlated inputs: H far from diagonal
    W = torch.randn(out, K, generator=g)
    return W, X


def on_grid(w, s):
    q = torch.round(w / s[:, None])
    return torch.equal(q * s[:, None], w) and bool((q.abs() <= 127).all())


def brute_force_row(w, s, H):
    """Least ``(w - q s) H (w - q s)^T`` over every rounding within +-1 of RTN's, with
    the float32 dequantized weights the kernels compute."""
    base = torch.round(w / s)
    d = torch.tensor(list(itertools.product((-1.0, 0.0, 1.0), repeat=w.numel())))
    q = (base + d).clamp(-127, 127)
    e = (w - q * s).to(torch.float64)
    return float(torch.einsum("ck,kl,cl->c", e, H, e).min())


def test_tiny_layers_between_rtn_and_brute_force():
    """GPTQ is greedy (one column at a time, each error spread onto the later columns), so
    it is not optimal and on a single instance can even lose to RTN (seed 6 with the fine
    grid: 2.27x vs 2.15x the optimum); over instances it must sit clearly between."""
    gptq, rtn = [], []
    for seed in range(8):
        for coarse in (1.0, 20.0):  # absmax's int8 grid, and one where rounding matters more
            W, X = data(out=2, K=6, n=200, seed=seed, mixing=2.0)
            H = hessian(X)
            s = weight_scales(W) * coarse
            res = gptq_quantize(W, H, s)
            opt = sum(brute_force_row(W[r], s[r], H) for r in range(2))
            assert opt <= res.err * (1 + 1e-9)  # brute force really is the optimum
            assert res.err <= 2.5 * opt
            gptq.append(res.err / opt)
            rtn.append(layer_error(W, quantize_rtn(W, s)[1], H) / opt)
    gptq, rtn = torch.tensor(gptq), torch.tensor(rtn)
    assert (gptq <= rtn * (1 + 1e-9)).float().mean() >= 0.9
    assert gptq.log().mean().exp() <= 1.5  # geometric mean over the 16 layers
    assert gptq.log().mean().exp() <= 0.75 * rtn.log().mean().exp()


def test_gptq_clearly_below_rtn_on_correlated_inputs():
    W, X = data()
    H = hessian(X)
    s = weight_scales(W, "mse", H_diag=torch.diagonal(H))
    rtn = layer_error(W, quantize_rtn(W, s)[1], H)
    res = gptq_quantize(W, H, s)
    assert res.err <= 0.8 * rtn
    assert res.err == pytest.approx(layer_error(W, res.w_deq, H), rel=1e-9)
    assert res.w_q.dtype == torch.int8 and res.w_deq.dtype == torch.float32
    assert torch.equal(res.w_deq, res.w_q.to(torch.float32) * s[:, None])
    ao = gptq_quantize(W, H, s, act_order=True)  # returned in the original column order
    assert ao.err <= 0.8 * rtn
    assert ao.err == pytest.approx(layer_error(W, ao.w_deq, H), rel=1e-9)


def test_lazy_batching_is_exact():
    W, X = data(out=16, K=40)
    P = prepare(hessian(X))
    s = weight_scales(W)
    a = gptq_quantize(W, P, s, blocksize=128, refine=2)
    for bs in (4, 7, 1):
        b = gptq_quantize(W, P, s, blocksize=bs, refine=2)
        assert torch.equal(a.w_q, b.w_q), bs
        assert torch.equal(a.w_deq, b.w_deq)


def test_identity_hessian_is_rtn():
    W, _ = data(out=8, K=20)
    s = weight_scales(W, "mse")
    q_rtn, _ = quantize_rtn(W, s)
    H = torch.eye(20, dtype=torch.float64) * 3.0
    for ao in (False, True):
        res = gptq_quantize(W, H, s, act_order=ao)
        assert torch.equal(res.w_q, q_rtn)


@pytest.mark.parametrize("mode", ["masked", "joint"])
@pytest.mark.parametrize("fmt", ["1x1", "bsr4x1"])
def test_mask_held_and_kept_weights_on_grid(mode, fmt):
    W, X = data(out=16, K=32)
    P = prepare(hessian(X))
    lv = list(reconstruct_levels(W, P, [0.0, 0.6], fmt))[-1]
    s = weight_scales(lv.weight)
    rtn = layer_error(W, quantize_rtn(lv.weight, s)[1], P.H)
    for refine in (0, 2):
        res = gptq_quantize(lv.weight, P, s, keep=lv.mask, W_ref=W, sparse_update=mode, refine=refine)
        assert torch.all(res.w_q[~lv.mask] == 0) and torch.all(res.w_deq[~lv.mask] == 0)
        assert on_grid(res.w_deq, s)
        assert res.err == pytest.approx(layer_error(W, res.w_deq, P.H), rel=1e-9)
    # The sweep alone need not beat rounding here (neither mode is the exact OBS update for
    # a row's own support; on MiniLM the joint sweep added 0.35x RTN's error on average, the
    # masked 0.63x: tools/bench/int8_quality.py). Refined against the dense weights it must,
    # and it can even undo some of the pruning error (the sparse fit stops after a few CG steps).
    assert res.err < rtn
    assert res.err < lv.err


def test_refinement_never_hurts_and_helps():
    W, X = data(out=24, K=40, seed=4)
    P = prepare(hessian(X))
    s = weight_scales(W)
    errs = [gptq_quantize(W, P, s, refine=r, sparse_update="joint").err for r in (0, 1, 2, 4)]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(errs, errs[1:]))
    assert errs[-1] < 0.97 * errs[0]


def test_dense_weights_with_a_mask_are_pruned_first():
    W, X = data(out=8, K=16)
    keep = torch.rand(8, 16, generator=torch.Generator().manual_seed(1)) > 0.5
    s = weight_scales(W)
    res = gptq_quantize(W, hessian(X), s, keep=keep)
    assert torch.all(res.w_q[~keep] == 0)


def test_conv_weight_hessian_object_and_scale_by_name():
    g = torch.Generator().manual_seed(5)
    W = torch.randn(6, 2, 3, 3, generator=g)
    h = Hessian(18)
    h.add(torch.randn(100, 18, generator=g))
    res = gptq_quantize(W, h, "mse")
    assert res.w_q.shape == W.shape and res.w_deq.shape == W.shape
    s = weight_scales(W.reshape(6, -1), "mse", H_diag=torch.diagonal(h.H))
    assert torch.equal(res.w_deq, res.w_q.float() * s[:, None, None, None])


def test_bad_arguments():
    W, X = data(out=4, K=8, n=50)
    H = hessian(X)
    s = weight_scales(W)
    with pytest.raises(ValueError, match=r"\[8, 8\]"):
        gptq_quantize(W, H[:4, :4], s)
    with pytest.raises(ValueError, match="keep"):
        gptq_quantize(W, H, s, keep=torch.ones(4, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="sparse_update"):
        gptq_quantize(W, H, s, sparse_update="x")
    with pytest.raises(ValueError, match="scale"):
        gptq_quantize(W, H, s[:2])
    with pytest.raises(ValueError, match="W_ref"):
        gptq_quantize(W, H, s, W_ref=W[:, :4])
