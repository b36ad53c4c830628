"""CSS leverage scores against numpy's SVD; L1/random criteria; projection residuals."""
import numpy as np
import torch

from spdy.chex import channel_groups, css_importance, group_matrix, l1_importance, random_importance
from spdy.chex._testmodels import ResNet, SmallCNN
from spdy.passes.algo import css


def test_leverage_scores_match_numpy_svd():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((72, 16))  # features x channels
    for k in (1, 4, 9, 15):
        _, _, vt = np.linalg.svd(W, full_matrices=False)
        ref = (vt[:k].T ** 2).sum(axis=1)
        got = css.leverage_scores(torch.from_numpy(W), k).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
        assert abs(got.sum() - k) < 1e-4  # leverage scores sum to k


def test_group_matrix_stacks_residual_producers():
    model = ResNet(blocks=(2, 2), widths=(8, 16))
    groups = channel_groups(model, torch.randn(1, 1, 28, 28))
    g = next(g for g in groups if g.member("layers.1.0.conv2", "out"))
    W = group_matrix(model, g)
    # conv2 (16*9) + downsample (8) + layers.1.1.conv2 (16*9) features, 16 channels
    assert W.shape == (16 * 9 + 8 + 16 * 9, 16)
    ref = np.linalg.svd(W.double().numpy(), full_matrices=False)[2][:5].T
    np.testing.assert_allclose(css_importance(model, g, 5).numpy(), (ref ** 2).sum(1), rtol=1e-5, atol=1e-6)


def test_l1_and_random():
    model = SmallCNN()
    g = channel_groups(model, torch.randn(1, 1, 28, 28))[1]
    ref = model.conv1.weight.detach().abs().sum(dim=(1, 2, 3))
    torch.testing.assert_close(l1_importance(model, g, 3), ref)
    assert torch.equal(random_importance(3)(model, g, 2), random_importance(3)(model, g, 2))


def test_projection_residual_zero_for_spanned_columns():
    W = torch.randn(20, 3, dtype=torch.float64)
    W = torch.cat([W, W[:, :2].sum(1, keepdim=True), torch.randn(20, 1, dtype=torch.float64)], 1)
    r = css.projection_residuals(W, torch.tensor([0, 1, 2]), torch.tensor([3, 4]))
    assert r[0] < 1e-8 and r[1] > 1e-2
