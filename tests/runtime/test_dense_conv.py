"""Dense conv2d kernels (im2col + register-tiled GEMM) against torch: odd shapes, tails,
strides, asymmetric pads, dilation, groups, depthwise, batch > 1, and every epilogue."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spdy.ir.ops import ACTIVATION_FNS

from ._dense_util import build_and_run

ACT = {"none": lambda y: y, **ACTIVATION_FNS}

CASES = [
    # (N, C, H, W, Cout, kh, kw, stride, pad(t,l,b,r), dilation, groups, bias, residual, act)
    (1, 5, 9, 7, 7, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True, False, "none"),     # 1x1 direct, tails
    (1, 3, 17, 15, 10, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True, True, "relu"),   # 3x3 + residual
    (2, 4, 13, 11, 6, 3, 3, (2, 2), (1, 0, 2, 1), (1, 1), 1, False, False, "relu6"),  # strided, asymmetric pad, batch 2
    (1, 3, 19, 19, 9, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1, True, False, "gelu"),   # 7x7 stem-like
    (1, 4, 12, 12, 5, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1), 1, True, True, "none"),    # 5x5
    (1, 6, 14, 10, 8, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2), 2, True, False, "relu"),   # dilated, grouped
    (1, 8, 11, 9, 8, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 8, True, True, "relu6"),    # depthwise strided
    (1, 4, 10, 10, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 4, False, False, "none"),  # depthwise multiplier 2
    (1, 6, 9, 9, 9, 1, 1, (2, 2), (0, 0, 0, 0), (1, 1), 3, True, False, "relu"),     # 1x1 strided grouped
    (1, 3, 8, 8, 40, 2, 3, (1, 2), (0, 1, 1, 0), (1, 1), 1, True, False, "none"),    # rectangular kernel
    (1, 8, 9, 9, 8, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 8, True, False, "silu"),     # depthwise + SiLU (EfficientNet)
    (1, 6, 7, 9, 10, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True, True, "hardswish"),  # 1x1 + hardswish (MobileNetV3)
    (1, 12, 1, 1, 6, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True, False, "sigmoid"),   # squeeze-excitation fc2
    (1, 12, 1, 1, 20, 1, 1, (1, 1), (0, 0, 0, 0), (1, 1), 1, True, False, "hardsigmoid"),
    # strided depthwise: direct on column phases (im2col.pad_split_source)
    (1, 5, 23, 21, 5, 5, 5, (2, 2), (2, 2, 2, 2), (1, 1), 5, True, False, "silu"),     # 5x5/2, odd size
    (2, 4, 12, 17, 4, 3, 3, (2, 2), (0, 0, 1, 1), (1, 1), 4, False, True, "none"),     # asymmetric pad, batch 2
    (1, 3, 16, 40, 6, 3, 3, (1, 3), (1, 1, 1, 1), (1, 1), 3, True, False, "relu"),     # multiplier 2, stride 3 wide
    (1, 4, 15, 15, 4, 3, 3, (2, 2), (2, 2, 2, 2), (2, 2), 4, True, False, "none"),     # dilated
    (1, 6, 40, 40, 6, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 6, True, False, "relu6"),    # full 16-lane tiles
    # whole 16-lane vectors of output channels per group: channels as lanes (gemm.default_params)
    (2, 5, 13, 18, 48, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True, True, "relu"),     # channel and pixel tails, batch 2
    (1, 6, 15, 17, 32, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, True, False, "gelu"),    # strided 3x3 on column phases
    (1, 8, 10, 10, 32, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 2, False, True, "none"),    # 16 per group
    (1, 3, 23, 23, 16, 7, 7, (2, 2), (3, 3, 3, 3), (1, 1), 1, True, False, "relu"),    # 7x7/2 stem, direct
]


@pytest.mark.parametrize("case", CASES, ids=[f"c{i}" for i in range(len(CASES))])
def test_conv_matches_torch(case):
    from spdy.runtime.kernels import emit_conv2d
    N, C, H, W, Co, kh, kw, stride, pad, dil, g, has_b, has_r, act = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((N, C, H, W)).astype("float32")
    w = rng.standard_normal((Co, C // g, kh, kw)).astype("float32")
    b = rng.standard_normal(Co).astype("float32") if has_b else None
    xt = torch.nn.functional.pad(torch.tensor(x), (pad[1], pad[3], pad[0], pad[2]))
    ref = torch.nn.functional.conv2d(xt, torch.tensor(w), None if b is None else torch.tensor(b),
                                     stride=stride, dilation=dil, groups=g)
    inputs = [x]
    if has_r:
        r = rng.standard_normal(tuple(ref.shape)).astype("float32")
        ref = ref + torch.tensor(r)
        inputs.append(r)
    ref = ACT[act](ref).numpy()

    def body(bb, vs, ctx):
        return emit_conv2d(bb, vs[0], w, b, vs[1] if has_r else None, stride=stride, padding=pad,
                           dilation=dil, groups=g, activation=act, name="layer.conv", ctx=ctx)
    got, ctx = build_and_run(inputs, body)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert ctx.stats.get("conv2d.dense") == 1


def test_sparse_layer_without_sparse_package_names_layer(monkeypatch):
    import sys
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.kernels import emit_conv2d
    from ._dense_util import target
    import spdy.runtime
    monkeypatch.setitem(sys.modules, "spdy.runtime.sparse", None)  # import fails ...
    monkeypatch.delattr(spdy.runtime, "sparse", raising=False)     # ... even if imported before
    ctx = EmitContext(target=target(), sparse={"blk.conv": {"format": "bsr16x1", "sparsity": 0.9}})
    with pytest.raises(NotImplementedError, match="blk.conv"):
        emit_conv2d(None, None, np.zeros((1, 1, 1, 1), "float32"), None, None, stride=(1, 1),
                    padding=(0, 0, 0, 0), dilation=(1, 1), groups=1, activation="none",
                    name="blk.conv", ctx=ctx)


class _PickTuner:
    """A stand-in tuner that returns the i-th candidate: every template point the real tuner
    may choose is then checked through the real emitter."""

    def __init__(self, i):
        self.i, self.seen = i, 0

    def best_params(self, signature, candidates, build_fn, *, default=None, source_hash="", **kw):
        self.seen = len(candidates)
        return candidates[min(self.i, len(candidates) - 1)]


@pytest.mark.parametrize("i,hw", [(2, (19, 21)), (6, (19, 21)), (0, (7, 9)), (3, (7, 9))])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2)], ids=["direct", "im2col"])
@pytest.mark.parametrize("per_group", [7, 48], ids=["pixel_lanes", "channel_lanes"])
def test_conv_candidates_match_torch(i, hw, stride, per_group):
    """Narrow convs (7 outputs per group) vectorize over pixels; 48 per group over output
    channels (vec="m"), with a 16-channel tail for the 32-channel candidates."""
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.kernels import emit_conv2d
    from ._dense_util import target
    rng = np.random.default_rng(i)
    x = rng.standard_normal((1, 6) + hw).astype("float32")
    w = rng.standard_normal((2 * per_group, 3, 3, 3)).astype("float32")
    ref = torch.relu(torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), stride=stride,
                                                padding=1, groups=2)).numpy()
    ctx = EmitContext(target=target(), tuner=_PickTuner(i))
    got, _ = build_and_run([x], lambda bb, vs, c: emit_conv2d(
        bb, vs[0], w, None, None, stride=stride, padding=(1, 1, 1, 1), dilation=(1, 1), groups=2,
        activation="relu", name="c", ctx=c), ctx=ctx)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
