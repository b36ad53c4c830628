"""emit_int8_conv2d through Relax (pack + conv kernels in one module), its tuning key, its
one-line errors, and time_int8_conv2d."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.qscheme import ActQuant

from ._conv_ref import int8_conv_ref
from ._conv_util import DYNAMIC, STATIC, target


def _ctx(tuner=None):
    from spdy.runtime.emit_context import EmitContext
    return EmitContext(target=target(), num_threads=2, tuner=tuner)


def _weights(o, cg, kh, kw, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(-127, 128, (o, cg, kh, kw)).astype(np.int8),
            (rng.random(o) * 0.01 + 0.005).astype(np.float32))


def _run(x_shape, w_q, w_scale, act, fmt, ctx, *, groups=1, stride=(1, 1), padding=(1, 1, 1, 1),
         dilation=(1, 1), residual=True, activation="relu"):
    import tvm
    from tvm import relax
    from spdy.runtime.int8.conv_timing import build_int8_conv_module
    ex, arrays = build_int8_conv_module(x_shape, w_q, w_scale, stride=stride, padding=padding, dilation=dilation,
                                        groups=groups, has_bias=True, has_residual=residual, activation=activation,
                                        act=act, fmt=fmt, ctx=ctx)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    got = vm["main"](*[tvm.runtime.tensor(a) for a in arrays]).numpy()
    bias = np.random.default_rng(0).standard_normal(w_q.shape[0]).astype(np.float32)
    ref = int8_conv_ref(arrays[0], w_q, w_scale, bias, arrays[1] if residual else None, act, stride=stride,
                        padding=padding, dilation=dilation, groups=groups, activation=activation)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fmt,act", [("dense", STATIC), ("bsr4x4-int8", DYNAMIC), ("bsr16x4", STATIC)])
def test_emit_matches_reference(fmt, act):
    w_q, ws = _weights(20, 8, 3, 3)
    w_q[:, :4] = 0                                      # half the blocks empty
    ctx = _ctx()
    _run((2, 8, 9, 18), w_q, ws, act, fmt, ctx, stride=(2, 1), padding=(1, 0, 2, 1))
    kind = "dense-int8" if fmt == "dense" else fmt if fmt.endswith("-int8") else f"{fmt}-int8"
    assert ctx.stats == {f"conv2d.{kind}": 1}


def test_emit_depthwise_runs_generic_kernel():
    w_q, ws = _weights(8, 1, 3, 3)
    ctx = _ctx()
    _run((1, 8, 10, 10), w_q, ws, STATIC, "bsr16x4", ctx, groups=8, residual=False, activation="relu6")
    assert ctx.stats == {"conv2d.int8_generic": 1}


def test_tuner_times_candidates_and_keys_by_layer():
    from spdy.runtime.int8.conv_emit import int8_conv_layer
    from spdy.runtime.tune import Tuner
    tuner = Tuner(target(), num_threads=2, use_db=False, max_candidates=2, repeat=2, min_repeat_ms=1)
    w_q, ws = _weights(16, 8, 3, 3)
    _run((1, 8, 8, 16), w_q, ws, STATIC, "dense", _ctx(tuner), residual=False)
    assert tuner.stats["tuned"] == 1

    def sig(**kw):
        args = dict(stride=1, padding=1, dilation=1, groups=1, act=STATIC, fmt="dense", activation="relu",
                    has_residual=False, target=target())
        args.update(kw)
        return int8_conv_layer((1, 8, 8, 16), w_q, ws, None, **args).signature
    base = sig()
    assert len({base, sig(act=DYNAMIC), sig(fmt="bsr4x4"), sig(activation="gelu"), sig(has_residual=True),
                sig(stride=2), sig(padding=(1, 0, 1, 0))}) == 7
    assert sig(act=ActQuant("static", 0.5, 3)) == base   # the scale is data, not speed


@pytest.mark.parametrize("kw,match", [
    (dict(act="static"), "ActQuant"),
    (dict(fmt="bsr16x1"), "int8 weight format"),
    (dict(activation="swish"), "unknown activation"),
    (dict(w_q=np.full((4, 8, 3, 3), 200, np.int16)), r"\[-127, 127\]"),
    (dict(w_scale=np.zeros(4, np.float32)), "positive"),
    (dict(groups=3), "groups"),
    (dict(padding=(1, 1, 1)), "padding"),
])
def test_bad_input_names_the_problem(kw, match):
    from spdy.runtime.int8.conv_emit import int8_conv_layer
    w_q, ws = _weights(4, 8, 3, 3)
    args = dict(w_q=w_q, w_scale=ws, stride=1, padding=1, dilation=1, groups=1, act=STATIC, fmt="dense",
                activation="none", has_residual=False, target=target())
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        int8_conv_layer((1, 8, 6, 6), args.pop("w_q"), args.pop("w_scale"), None, **args)


def test_time_int8_conv2d_is_positive_seconds():
    from spdy.runtime.int8.conv_timing import time_int8_conv2d
    w_q, ws = _weights(16, 8, 3, 3)
    t = time_int8_conv2d((1, 8, 8, 8), w_q, ws, stride=1, padding=1, dilation=1, groups=1, has_bias=True,
                         has_residual=True, activation="relu", act=DYNAMIC, fmt="bsr1x4", ctx=_ctx(),
                         repeat=2, min_repeat_ms=1)
    assert 0 < t < 0.1
