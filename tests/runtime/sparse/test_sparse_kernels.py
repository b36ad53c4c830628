"""Numerics of the sparse TIR kernels against numpy/torch: formats, tails, empty rows,
0% / 99% sparsity, epilogues, conv variants."""
import numpy as np
import pytest

from spdy.activations import ACTIVATIONS
from spdy.runtime.sparse import ConvGeom, Params, conv_kernel, linear_kernel, magnitude_mask, to_bsr

from ._sparse_util import act_ref, conv_ref, run_kernel

FMTS = ["bsr16x1", "bsr4x1", "bsr1x1"]


def _pruned(rng, shape, fmt, sparsity):
    w = rng.standard_normal(shape).astype("float32")
    return w * magnitude_mask(w, fmt, sparsity)


def _linear_case(x_shape, n, fmt, sparsity, p, act="none", bias=False, residual=False, seed=0):
    rng = np.random.default_rng(seed)
    k_in = x_shape[-1]
    w = _pruned(rng, (n, k_in), fmt, sparsity)
    x = rng.standard_normal(x_shape).astype("float32")
    extra, ref = [], x @ w.T
    if bias:
        b = rng.standard_normal(n).astype("float32")
        extra.append(b)
        ref = ref + b
    if residual:
        r = rng.standard_normal((*x_shape[:-1], n)).astype("float32")
        extra.append(r)
        ref = ref + r
    k = linear_kernel(to_bsr(w, fmt), x_shape, p, bias=bias, residual=residual, act=act)
    np.testing.assert_allclose(run_kernel(k, x, extra), act_ref(ref, act), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("x_shape,n,qt", [((1, 32), 48, 16), ((37, 29), 37, 16), ((2, 5, 20), 19, 32),
                                          ((130, 24), 33, 64)])
def test_linear_shapes_tails(fmt, x_shape, n, qt):
    _linear_case(x_shape, n, fmt, 0.7, Params(qt, 2))


@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("sparsity", [0.0, 0.99])
def test_linear_extreme_sparsity(fmt, sparsity):
    _linear_case((9, 40), 36, fmt, sparsity, Params(16, 2), bias=True)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_linear_epilogues(act):
    _linear_case((7, 24), 20, "bsr4x1", 0.5, Params(16, 2), act=act, bias=True, residual=True)


@pytest.mark.parametrize("parts", [1, 3])
def test_linear_empty_block_rows_and_parts(parts):
    """Empty block rows (and an all-empty matrix) give bias-only outputs; any thread split."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((64, 16)).astype("float32")
    w[16:48] = 0.0                       # two empty 16-row blocks in the middle
    x = rng.standard_normal((20, 16)).astype("float32")
    b = rng.standard_normal(64).astype("float32")
    k = linear_kernel(to_bsr(w, "bsr16x1"), x.shape, Params(16, parts), bias=True, residual=False, act="relu")
    np.testing.assert_allclose(run_kernel(k, x, [b]), np.maximum(x @ w.T + b, 0), rtol=1e-4, atol=1e-4)
    k = linear_kernel(to_bsr(0 * w, "bsr1x1"), x.shape, Params(16, parts), bias=True, residual=False, act="none")
    np.testing.assert_allclose(run_kernel(k, x, [b]), np.broadcast_to(b, (20, 64)), rtol=1e-6)


CONVS = [  # n, c, h, w, o, kh, kw, stride, padding (t, l, b, r), dilation
    (1, 8, 6, 6, 16, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1)),     # 1x1
    (1, 5, 7, 9, 13, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),     # 3x3 same, O tail
    (2, 5, 9, 11, 20, 3, 3, (2, 1), (1, 0, 2, 1), (1, 2)),    # stride, asym pad, dilation, batch 2
    (1, 3, 12, 12, 8, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1)),    # stem-like 7x7/2
    (1, 6, 8, 8, 17, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1)),     # strided 1x1 (downsample)
]


@pytest.mark.parametrize("fmt,method,qt", [("bsr16x1", "direct", 16), ("bsr4x1", "direct", 32),
                                           ("bsr1x1", "direct", 64), ("bsr4x1", "im2col", 16)])
@pytest.mark.parametrize("case", CONVS, ids=lambda c: "x".join(map(str, c[:7])))
def test_conv_variants(fmt, case, method, qt):
    n, c, h, w_, o, kh, kw, s, pad, d = case
    rng = np.random.default_rng(5)
    w = _pruned(rng, (o, c, kh, kw), fmt, 0.6)
    x = rng.standard_normal((n, c, h, w_)).astype("float32")
    g = ConvGeom(n, c, h, w_, o, kh, kw, s, pad, d)
    k = conv_kernel(to_bsr(w, fmt), g, Params(qt, 2, method), bias=False, residual=False, act="none")
    np.testing.assert_allclose(run_kernel(k, x), conv_ref(x, w, s, pad, d), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("act,sparsity,method", [("relu", 0.0, "direct"), ("relu6", 0.99, "direct"),
                                                 ("gelu", 0.0, "direct"), ("gelu", 0.99, "im2col"),
                                                 ("relu", 1.0, "direct")])
def test_conv_epilogue_extremes(act, sparsity, method):
    rng = np.random.default_rng(6)
    n, c, h, w_, o = 1, 4, 5, 5, 18
    w = _pruned(rng, (o, c, 3, 3), "bsr16x1", sparsity)
    x = rng.standard_normal((n, c, h, w_)).astype("float32")
    bias = rng.standard_normal(o).astype("float32")
    res = rng.standard_normal((n, o, h, w_)).astype("float32")
    g = ConvGeom(n, c, h, w_, o, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1))
    k = conv_kernel(to_bsr(w, "bsr16x1"), g, Params(32, 2, method), bias=True, residual=True, act=act)
    ref = conv_ref(x, w, (1, 1), (1, 1, 1, 1), (1, 1)) + bias[None, :, None, None] + res
    np.testing.assert_allclose(run_kernel(k, x, [bias, res]), act_ref(ref, act), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_1x1_no_junk_columns_with_residual(stride):
    """1x1 convs have no pitched junk columns: the vector-store path, tails and residual."""
    rng = np.random.default_rng(7)
    w = _pruned(rng, (20, 8, 1, 1), "bsr4x1", 0.5)
    x = rng.standard_normal((1, 8, 9, 9)).astype("float32")
    g = ConvGeom(1, 8, 9, 9, 20, 1, 1, (stride, stride), (0, 0, 0, 0), (1, 1))
    res = rng.standard_normal((1, 20, g.oh, g.ow)).astype("float32")
    k = conv_kernel(to_bsr(w, "bsr4x1"), g, Params(16, 2), bias=False, residual=True, act="relu")
    ref = np.maximum(conv_ref(x, w, (stride, stride), (0, 0, 0, 0), (1, 1)) + res, 0)
    np.testing.assert_allclose(run_kernel(k, x, [res]), ref, rtol=1e-4, atol=1e-4)


def test_conv_resnet_sized_layer():
    """One realistic layer (64->64 3x3 at 28x28, 90% bsr16x1) with uneven rows."""
    rng = np.random.default_rng(8)
    w = rng.standard_normal((64, 64, 3, 3)).astype("float32") * np.exp(rng.standard_normal(64))[:, None, None, None]
    w = (w * magnitude_mask(w, "bsr16x1", 0.9)).astype("float32")
    x = rng.standard_normal((1, 64, 28, 28)).astype("float32")
    g = ConvGeom(1, 64, 28, 28, 64, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1))
    k = conv_kernel(to_bsr(w, "bsr16x1"), g, Params(16, 2), bias=False, residual=False, act="none")
    np.testing.assert_allclose(run_kernel(k, x), conv_ref(x, w, (1, 1), (1, 1, 1, 1), (1, 1)), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("fmt,x_shape,n,mr", [("bsr16x1", (1, 32), 48, 1), ("bsr16x1", (3, 29), 37, 2),
                                              ("bsr4x1", (2, 5, 20), 19, 4), ("bsr4x1", (7, 24), 22, 8)])
def test_linear_rowvec(fmt, x_shape, n, mr):
    """Row-vector kernel (few rows of X): M and N tails, bias + residual + gelu."""
    _linear_case(x_shape, n, fmt, 0.6, Params(16, 2, mr=mr), act="gelu", bias=True, residual=True)


def test_default_params_pick_rowvec_for_batch1():
    from spdy.runtime.sparse import candidates, default_params
    assert default_params(16, 1, 2, "linear").mr == 1
    assert default_params(1, 1, 2, "linear").mr == 0          # 1x1 blocks stay column-vector
    assert any(p.mr for p in candidates(4, 128, 2, "linear"))
    assert not any(p.mr for p in candidates(16, 3136, 2, "conv"))


def test_conv_candidates_offer_one_part_on_several_threads():
    """A strided sparse conv can run slower split over two threads: the tuner may keep one part."""
    from spdy.runtime.sparse import candidates
    assert {p.parts for p in candidates(16, 784, 2, "conv")} == {1, 2}
    assert {p.parts for p in candidates(16, 784, 1, "conv")} == {1}
    assert all(p.parts == 2 for p in candidates(16, 128, 2, "linear") if not p.mr)
