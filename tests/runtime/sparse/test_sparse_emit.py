"""The Relax emitters: layers in ctx.sparse become call_tir of a sparse kernel with BSR constants."""
import numpy as np
import pytest

from ._sparse_util import act_ref, conv_ref, target
from spdy.runtime.sparse import magnitude_mask


def _build_and_run(inputs, body, ctx):
    import tvm
    from tvm import relax
    from spdy.runtime.kernels import relax_pipeline
    tgt = ctx.target
    bb = relax.BlockBuilder()
    vs = [relax.Var(f"x{i}", relax.TensorType(list(a.shape), "float32")) for i, a in enumerate(inputs)]
    with bb.function("main", vs):
        with bb.dataflow():
            out = bb.emit_output(body(bb, vs, ctx))
        bb.emit_func_output(out)
    mod = bb.get()
    ex = tvm.compile(mod, tgt, relax_pipeline=relax_pipeline(tgt, ctx))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(a) for a in inputs]).numpy(), mod


def _ctx(sparse, tuner=None):
    from spdy.runtime.emit_context import EmitContext
    return EmitContext(target=target(), num_threads=2, sparse=sparse, tuner=tuner)


def test_linear_through_dispatch():
    from spdy.runtime.kernels import emit_linear
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 24)).astype("float32")
    w *= magnitude_mask(w, "bsr16x1", 0.8)
    b = rng.standard_normal(40).astype("float32")
    x = rng.standard_normal((2, 3, 24)).astype("float32")
    r = rng.standard_normal((2, 3, 40)).astype("float32")
    ctx = _ctx({"fc": {"format": "bsr16x1", "sparsity": 0.8}})
    y, mod = _build_and_run([x, r], lambda bb, v, c: emit_linear(bb, v[0], w, b, v[1], activation="gelu",
                                                                 name="fc", ctx=c), ctx)
    np.testing.assert_allclose(y, act_ref(x @ w.T + b + r, "gelu"), rtol=1e-4, atol=1e-4)
    assert ctx.stats.get("linear.bsr16x1") == 1
    assert any("bsr16x1" in gv.name_hint for gv in mod.get_global_vars())


def test_linear_magnitude_mask_from_spec():
    from spdy.runtime.sparse import emit_sparse_linear
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 16)).astype("float32")
    x = rng.standard_normal((3, 16)).astype("float32")
    spec = {"format": "bsr1x1", "sparsity": 0.75, "magnitude_mask": True}
    ctx = _ctx({"fc": spec})
    y, _ = _build_and_run([x], lambda bb, v, c: emit_sparse_linear(bb, v[0], w, None, None, activation="none",
                                                                   name="fc", ctx=c, spec=spec), ctx)
    wm = w * magnitude_mask(w, "bsr1x1", 0.75)
    np.testing.assert_allclose(y, x @ wm.T, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_through_dispatch(groups):
    from spdy.runtime.kernels import emit_conv2d
    rng = np.random.default_rng(2)
    c, o = 4, 20
    w = rng.standard_normal((o, c // groups, 3, 3)).astype("float32")
    w *= magnitude_mask(w, "bsr4x1", 0.7)
    b = rng.standard_normal(o).astype("float32")
    x = rng.standard_normal((1, c, 7, 6)).astype("float32")
    ctx = _ctx({"conv": {"format": "bsr4x1", "sparsity": 0.7}})
    kw = dict(stride=(2, 1), padding=(1, 0, 1, 2), dilation=(1, 1), groups=groups, activation="relu6",
              name="conv", ctx=ctx)
    y, _ = _build_and_run([x], lambda bb, v, c_: emit_conv2d(bb, v[0], w, b, None, **kw), ctx)
    import torch
    t, l, bt, r = 1, 0, 1, 2
    xp = torch.nn.functional.pad(torch.from_numpy(x), (l, r, t, bt))
    ref = torch.nn.functional.conv2d(xp, torch.from_numpy(w), torch.from_numpy(b), stride=(2, 1),
                                     groups=groups).numpy()
    np.testing.assert_allclose(y, act_ref(ref, "relu6"), rtol=1e-4, atol=1e-4)
    key = "conv2d.bsr4x1" if groups == 1 else "conv2d.sparse_fallback"
    assert ctx.stats.get(key) == 1


def test_unknown_format_is_a_clear_error():
    from spdy.runtime.sparse import emit_sparse_linear
    w = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="bsr16x1"):
        _build_and_run([np.ones((1, 4), np.float32)],
                       lambda bb, v, c: emit_sparse_linear(bb, v[0], w, None, None, activation="none", name="fc",
                                                           ctx=c, spec={"format": "csr"}), _ctx({}))


def test_tuner_picks_a_candidate_and_residual_conv():
    from spdy.runtime.sparse import emit_sparse_conv2d
    from spdy.runtime.tune import Tuner
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 8, 1, 1)).astype("float32")
    w *= magnitude_mask(w, "bsr16x1", 0.5)
    x = rng.standard_normal((1, 8, 6, 6)).astype("float32")
    res = rng.standard_normal((1, 16, 6, 6)).astype("float32")
    tuner = Tuner(target(), num_threads=2, use_db=False, repeat=2, min_repeat_ms=1.0)
    spec = {"format": "bsr16x1", "sparsity": 0.5}
    ctx = _ctx({"c": spec}, tuner)
    y, _ = _build_and_run([x, res], lambda bb, v, c: emit_sparse_conv2d(
        bb, v[0], w, None, v[1], stride=1, padding=0, dilation=1, groups=1, activation="none",
        name="c", ctx=c, spec=spec), ctx)
    np.testing.assert_allclose(y, conv_ref(x, w, (1, 1), (0, 0, 0, 0), (1, 1)) + res, rtol=1e-4, atol=1e-4)
    assert tuner.stats["tuned"] == 1
