"""Layer-wise reconstruction: errors below plain magnitude pruning, progressive and block masks."""
import pytest
import torch
import torch.nn.functional as F

from spdy.errors import CalibrationError
from spdy.formats import block_mask
from spdy.passes.algo.reconstruct import Hessian, conv_inputs_to_X, hessian, layer_error, reconstruct_levels

LEVELS = [0.0, 0.4, 0.6, 0.8, 0.9]


def data(out=32, K=24, n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(K, K, generator=g) / K ** 0.5 + torch.eye(K)
    X = torch.randn(n, K, generator=g) @ mix  # correlated inputs: H far from diagonal
    W = torch.randn(out, K, generator=g)
    return W, X


def magnitude_error(W, H, s):
    """Plain one-shot magnitude pruning (no reconstruction) at sparsity s."""
    k = int(round(s * W.numel()))
    thr = W.abs().flatten().sort().values[k - 1] if k else -1
    Wp = torch.where(W.abs() > thr, W, torch.zeros_like(W))
    return layer_error(W, Wp, H)


def test_unknown_format_is_refused():
    W, X = data()
    for bad in ("bsr8x8", "foo"):
        with pytest.raises(Exception, match="unknown weight format"):
            reconstruct_levels(W, hessian(X), [0.5], bad)


@pytest.mark.parametrize("method", ["obs", "lstsq", "adaprune"])
def test_error_below_magnitude_pruning(method):
    W, X = data()
    H = hessian(X)
    res = list(reconstruct_levels(W, H, LEVELS, "1x1", method))
    assert [r.level for r in res] == list(range(len(LEVELS)))
    assert res[0].err == 0.0 and torch.equal(res[0].weight, W) and res[0].mask.all()
    for r, s in zip(res[1:], LEVELS[1:]):
        mag = magnitude_error(W, H, s)
        assert r.err < mag, (method, s, r.err, mag)
        assert r.err < 0.9 * mag
        assert r.err == pytest.approx(layer_error(W, r.weight, H), rel=1e-5)
        assert r.weight.dtype == W.dtype and r.weight.shape == W.shape
        assert torch.all(r.weight[~r.mask] == 0)
    errs = [r.err for r in res]
    assert errs == sorted(errs)  # more sparsity, more error


def test_obs_refinement_reaches_least_squares():
    W, X = data(out=16, K=32)
    H = hessian(X)
    lst = list(reconstruct_levels(W, H, [0.0, 0.5, 0.8], "bsr4x1", "lstsq"))
    raw = list(reconstruct_levels(W, H, [0.0, 0.5, 0.8], "bsr4x1", "obs", refine_iters=0))
    ref = list(reconstruct_levels(W, H, [0.0, 0.5, 0.8], "bsr4x1", "obs", refine_iters=50))
    for a, b, c in zip(lst[1:], raw[1:], ref[1:]):
        assert c.err <= b.err
        assert c.err == pytest.approx(a.err, rel=1e-3)


def test_lstsq_is_optimal_for_its_mask():
    W, X = data(out=8, K=12)
    H = hessian(X)
    lst = list(reconstruct_levels(W, H, [0.5], "1x1", "lstsq", damp=1e-9))[0]
    obs = list(reconstruct_levels(W, H, [0.5], "1x1", "obs", damp=1e-9))[0]
    assert torch.equal(lst.mask, obs.mask)  # same magnitude mask from the dense weights
    assert lst.err <= obs.err * (1 + 1e-6)
    # perturbing kept weights only increases the error
    g = torch.Generator().manual_seed(1)
    bumped = lst.weight + 1e-3 * torch.randn(W.shape, generator=g) * lst.mask
    assert layer_error(W, bumped, H) > lst.err


@pytest.mark.parametrize("fmt,br", [("1x1", 1), ("bsr4x1", 4), ("bsr16x1", 16)])
def test_progressive_masks_exact_counts_and_blocks(fmt, br):
    W, X = data(out=32, K=20)
    res = list(reconstruct_levels(W, None, LEVELS, fmt, "obs", X=X))
    n_blocks = (32 // br) * 20
    prev = None
    for r, s in zip(res, LEVELS):
        assert r.mask.dtype == torch.bool
        pruned = int((~r.mask).sum())
        assert pruned == round(s * n_blocks) * br  # exact counts
        blocks = r.mask.reshape(32 // br, br, 20)
        assert torch.all(blocks == blocks[:, :1, :])  # BR x 1 block structure
        if prev is not None:
            assert torch.all(r.mask <= prev)  # nested: pruned stays pruned
        prev = r.mask


def test_progressive_mask_uses_previous_reconstruction():
    # level i+1's mask comes from level i's reconstructed weights, not from the dense ones
    W, X = data()
    res = list(reconstruct_levels(W, hessian(X), [0.4, 0.7], "1x1", "obs"))
    expect = block_mask(res[0].weight.double(), "bsr1x1", 0.7, prev_keep=res[0].mask)
    assert torch.equal(res[1].mask, expect)


def test_resume_continues_the_chain():
    W, X = data()
    H = hessian(X)
    full = list(reconstruct_levels(W, H, LEVELS, "bsr4x1", "obs"))
    r2 = full[2]
    rest = list(reconstruct_levels(W, H, LEVELS, "bsr4x1", "obs", resume=(2, r2.mask, r2.weight)))
    assert [r.level for r in rest] == [3, 4]
    for a, b in zip(rest, full[3:]):
        assert torch.equal(a.mask, b.mask)
        torch.testing.assert_close(a.weight, b.weight)


def test_conv_weight_and_im2col():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 9, 9, generator=g)
    w = torch.randn(8, 4, 3, 3, generator=g)
    for stride, pad, dil in [(1, 1, 1), (2, 0, 1), (1, 2, 2)]:
        X = conv_inputs_to_X(x, 3, stride=stride, padding=pad, dilation=dil)
        y = F.conv2d(x, w, stride=stride, padding=pad, dilation=dil)
        y2 = (X @ w.reshape(8, -1).T).reshape(3, -1, 8).permute(0, 2, 1).reshape(y.shape)
        torch.testing.assert_close(y, y2, rtol=1e-4, atol=1e-4)
    X = conv_inputs_to_X(x, 3, padding=1)
    res = list(reconstruct_levels(w, None, [0.0, 0.5], "bsr4x1", "obs", X=X))
    assert res[1].weight.shape == w.shape and res[1].mask.shape == w.shape
    plain = layer_error(w, w * res[1].mask, hessian(X))  # same block mask, no re-fit
    assert res[1].err < plain
    with pytest.raises(ValueError):
        conv_inputs_to_X(x, 3, groups=2)
    with pytest.raises(ValueError):
        conv_inputs_to_X(x, 3, padding="same")


def test_streaming_hessian():
    _, X = data()
    h = Hessian(X.shape[1])
    for chunk in X.split(37):
        h.add(chunk)
    assert h.n == X.shape[0]
    torch.testing.assert_close(h.H, (X.double().T @ X.double()) / X.shape[0])
    with pytest.raises(CalibrationError):
        Hessian(3).H
    with pytest.raises(CalibrationError):
        Hessian(2).add(torch.tensor([[1.0, float("nan")]]))


def test_argument_validation():
    W, X = data(out=4, K=6)
    H = hessian(X)
    with pytest.raises(ValueError):
        list(reconstruct_levels(W, H, [0.5, 0.4]))
    with pytest.raises(ValueError):
        list(reconstruct_levels(W, H, [0.5], method="magic"))
    with pytest.raises(ValueError):
        list(reconstruct_levels(W, torch.eye(5), [0.5]))
    with pytest.raises(ValueError):
        list(reconstruct_levels(W, H, [0.5], X=X))
    with pytest.raises(ValueError):
        list(reconstruct_levels(W, H, [1.0]))


def test_partial_last_block_and_adaprune_blocks():
    W, X = data(out=10, K=8)  # 10 rows, 4-row blocks: the last block has 2 rows
    res = list(reconstruct_levels(W, hessian(X), [0.5, 0.75], "bsr4x1", "adaprune",
                                  adaprune_steps=10))
    for r, s in zip(res, [0.5, 0.75]):
        blocks = torch.nn.functional.pad(r.mask, (0, 0, 0, 2), value=True)[:12]
        full = blocks.reshape(3, 4, 8)[:, :2, :]  # compare the rows every block has
        assert torch.all(full == full[:, :1, :])
        assert int((~r.mask[::4]).sum()) == round(s * 3 * 8)  # block count exact
        assert r.err <= layer_error(W, W * r.mask, hessian(X)) + 1e-9
    assert torch.all(res[1].mask <= res[0].mask)


def test_bad_arguments_fail_at_call_not_at_first_level():
    W, X = data(out=4, K=6)
    with pytest.raises(ValueError):
        reconstruct_levels(W, hessian(X), [0.5, 0.4])  # no list(): raised eagerly


def test_prepared_hessian_gives_the_same_levels():
    from spdy.passes.algo.reconstruct import prepare
    W, X = data()
    H = hessian(X)
    P = prepare(H, damp=0.05)
    for fmt in ("1x1", "bsr4x1"):
        a = list(reconstruct_levels(W, H, LEVELS, fmt, "obs", damp=0.05))
        b = list(reconstruct_levels(W, P, LEVELS, fmt, "obs"))
        for x, y in zip(a, b):
            assert torch.equal(x.mask, y.mask) and torch.equal(x.weight, y.weight)
            assert x.err == y.err
    c = list(reconstruct_levels(W, P, LEVELS, "1x1", "lstsq"))
    d = list(reconstruct_levels(W, H, LEVELS, "1x1", "lstsq", damp=0.05))
    assert all(torch.equal(x.weight, y.weight) for x, y in zip(c, d))
