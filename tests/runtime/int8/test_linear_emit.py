"""emit_int8_linear through Relax (every format, 3-D input, residual), input checks, tuner and timing."""
from __future__ import annotations

import numpy as np
import pytest

from spdy.qscheme import ActQuant

from .._dense_util import build_and_run
from ._linear_ref import DYNAMIC, STATIC, assert_close, linear_ref, random_weight, target


@pytest.mark.parametrize("fmt,act", [("dense", STATIC), ("bsr16x4", DYNAMIC), ("bsr4x4-int8", STATIC),
                                     ("bsr1x4", DYNAMIC)])
def test_emit_matches_reference(fmt, act):
    from spdy.runtime.int8 import emit_int8_linear
    rng = np.random.default_rng(3)
    n, k = 20, 24
    base = fmt.replace("-int8", "")
    w = random_weight(rng, n, k, fmt=base, density=0.5, zero_block_rows=1)
    ws = (rng.random(n) * 0.02 + 1e-3).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    x = rng.standard_normal((2, 3, k)).astype(np.float32)
    r = rng.standard_normal((2, 3, n)).astype(np.float32)

    def body(bb, vs, ctx):
        return emit_int8_linear(bb, vs[0], w, ws, b, vs[1], act=act, fmt=fmt, activation="relu", name="fc",
                                ctx=ctx)
    got, ctx = build_and_run([x, r], body)
    want = linear_ref(x.reshape(-1, k), w, ws, act, b, r.reshape(-1, n), "relu").reshape(2, 3, n)
    assert got.shape == (2, 3, n)
    assert_close(got, want)
    assert ctx.stats == {f"linear.{base}-int8": 1}


def _layer(**kw):
    from spdy.runtime.int8 import int8_linear_layer
    args = dict(x_shape=(4, 8), w_q=np.ones((6, 8), np.int8), w_scale=np.ones(6, np.float32), bias=None,
                has_residual=False, activation="none", act=STATIC, fmt="dense", target=target(), name="fc")
    args.update(kw)
    return int8_linear_layer(args.pop("x_shape"), args.pop("w_q"), args.pop("w_scale"), args.pop("bias"), **args)


@pytest.mark.parametrize("kw,msg", [
    (dict(fmt="bsr8x4"), "unknown int8 linear format 'bsr8x4'"),
    (dict(w_q=np.ones((6, 8), np.float32)), "fc: w_q must be an int8 matrix"),
    (dict(x_shape=(4, 9)), "fc: x .* has 9 features, the weight expects 8"),
    (dict(w_scale=np.zeros(6, np.float32)), "fc: w_scale must hold 6 positive finite"),
    (dict(bias=np.ones(5, np.float32)), "fc: bias has 5 entries for 6 outputs"),
    (dict(activation="tanh"), "fc: unknown activation 'tanh'"),
    (dict(act="static"), "fc: act must be a spdy.qscheme.ActQuant"),
])
def test_bad_inputs_name_the_problem(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _layer(**kw)


def test_signature_and_level():
    w = random_weight(np.random.default_rng(0), 32, 16, fmt="bsr16x4", density=0.5)
    a = _layer(w_q=w, w_scale=np.ones(32, np.float32), x_shape=(2, 7, 16), fmt="bsr16x4", activation="gelu",
               act=DYNAMIC, has_residual=True)
    b = _layer(w_q=w, w_scale=np.ones(32, np.float32), x_shape=(2, 7, 16), fmt="bsr16x4", activation="gelu",
               act=ActQuant("static", 0.1, 9), has_residual=True)
    assert a.signature != b.signature                              # the act mode changes the kernel
    assert "M14:N32:K16" in a.signature and "gelu" in a.signature and "b0r1" in a.signature
    assert a.format_name == "bsr16x4-int8" and a.level_bp == int(round(a.blocks.sparsity * 10000))
    assert _layer().level_bp == 0


def test_tuner_and_timing():
    from spdy.runtime.emit_context import EmitContext
    from spdy.runtime.int8 import time_int8_linear
    from spdy.runtime.int8.emit import SOURCE_HASH, int8_linear_layer, tune_layer
    from spdy.runtime.tune import Tuner
    tgt = target()
    tuner = Tuner(tgt, 2, use_db=False, max_candidates=2, repeat=1, min_repeat_ms=1)
    ctx = EmitContext(target=tgt, num_threads=2, tuner=tuner)
    w = random_weight(np.random.default_rng(0), 16, 32, fmt="bsr4x4", density=0.3)
    layer = int8_linear_layer((8, 32), w, np.ones(16, np.float32), None, has_residual=False, activation="none",
                              act=STATIC, fmt="bsr4x4", target=tgt, num_threads=2)
    params, secs = tune_layer(ctx, layer)
    assert params in layer.candidates()[:2] and secs > 0 and tuner.stats["tuned"] == 1
    assert len(SOURCE_HASH) == 16
    t = time_int8_linear((8, 32), w, np.ones(16, np.float32), has_bias=True, has_residual=False, activation="none",
                         act=STATIC, fmt="bsr4x4", ctx=ctx, repeat=1, min_repeat_ms=1)
    assert 0 < t < 1
