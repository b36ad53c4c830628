"""The fused multi-head attention kernel (spdy/runtime/kernels/mha.py) against torch over row,
key and head-lane tails and mask shapes, and the lowering's use of it (a tiny MiniLM artifact
computes attention in it and matches torch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ._dense_util import run_prim_func


def _reference(q, k, v, m, heads, scale):
    b, s, e = q.shape
    d = e // heads

    def split(t):
        return torch.tensor(t).reshape(t.shape[0], t.shape[1], heads, d).permute(0, 2, 1, 3)

    scores = split(q) @ split(k).transpose(-1, -2) * scale
    if m is not None:
        scores = scores + torch.tensor(m)[:, None]
    return (torch.softmax(scores, -1) @ split(v)).permute(0, 2, 1, 3).reshape(b, s, e).numpy()


@pytest.mark.parametrize("b,s,sk,heads,d,mask", [
    (1, 64, 64, 12, 32, (1, 1)),    # MiniLM at 64 tokens, key mask
    (2, 13, 21, 3, 8, (2, 13)),     # row and key tails, a full [B, S, Sk] mask
    (2, 5, 5, 2, 6, (1, 1)),        # head dim 6: 2-lane P V
    (1, 9, 40, 2, 16, None),        # no mask, cross-length keys
    (1, 1, 1, 1, 1, None),
])
def test_mha_kernel_matches_torch(b, s, sk, heads, d, mask):
    from spdy.runtime.kernels.mha import mha_kernel
    rng = np.random.default_rng(s * 100 + sk)
    q, k, v = (rng.standard_normal((b, n, heads * d)).astype("float32") for n in (s, sk, sk))
    m = None
    if mask is not None:
        m = (rng.standard_normal((mask[0], mask[1], sk)) * 3).astype("float32")
        m[..., 0] = -10000.0                        # BERT's masked key
    arrays = [q, k, v] + ([m] if m is not None else [])
    for lanes, threads in ((16, 2), (8, 3)):     # 3 workers: uneven shares of the (batch, head) tasks
        got = run_prim_func(mha_kernel(b, s, sk, heads, d, 0.3, mask, lanes=lanes, threads=threads), *arrays,
                            out_shape=q.shape)
        np.testing.assert_allclose(got, _reference(q, k, v, m, heads, 0.3), rtol=1e-5, atol=2e-6)


def test_mha_kernel_takes_a_bool_keep_mask_as_sdpa_does():
    from spdy.runtime.kernels.mha import mha_kernel
    b, s, heads, d = 2, 7, 2, 8
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((b, s, heads * d)).astype("float32") for _ in range(3))
    keep = np.ones((b, s, s), bool)
    keep[1, :, 4:] = False                                  # padded keys of the second sentence
    ref = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(t).reshape(b, s, heads, d).transpose(1, 2) for t in (q, k, v)),
        attn_mask=torch.tensor(keep)[:, None], scale=0.3).transpose(1, 2).reshape(b, s, heads * d).numpy()
    import tvm
    from ._dense_util import target     # run_prim_func casts every array to float32: not the bool mask
    lib = tvm.compile(mha_kernel(b, s, s, heads, d, 0.3, (b, s), mask_dtype="bool", threads=2), target=target())
    out = tvm.runtime.tensor(np.full(q.shape, np.nan, "float32"))
    lib(*[tvm.runtime.tensor(a) for a in (q, k, v, keep)], out)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=2e-6)


def test_mha_kernel_reads_a_merged_qkv_tensor():
    from spdy.runtime.kernels.mha import mha_kernel
    b, s, heads, d = 2, 11, 3, 8
    e = heads * d
    rng = np.random.default_rng(1)
    qkv = rng.standard_normal((b, s, 3 * e)).astype("float32")
    m = rng.standard_normal((1, 1, s)).astype("float32")
    f = mha_kernel(b, s, s, heads, d, 0.35, (1, 1), widths=(3 * e,) * 3, offsets=(0, e, 2 * e))
    got = run_prim_func(f, qkv, qkv, qkv, m, out_shape=(b, s, e))
    ref = _reference(qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:], m, heads, 0.35)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-6)


def test_minilm_attention_lowers_to_the_fused_kernel():
    import spdy
    from tests.models.test_minilm import inputs, tiny
    m = tiny()
    ids, mask = inputs(b=3, s=8)
    cm = spdy.compile(m, (ids, mask), tune=False, measure=False)
    lower = next(r for r in cm.passlog if r.get("pass") == "lower-to-tvm")
    assert lower["stats"]["kernels"].get("attention.fused") == 2      # one per layer
    with torch.no_grad():
        ref = m(ids, mask).numpy()
    np.testing.assert_allclose(np.asarray(cm(ids.numpy(), mask.numpy())), ref, atol=1e-5)


def test_int8_minilm_merges_query_key_value_and_matches_its_pruned_model():
    import spdy
    from tests.models.test_minilm import inputs, tiny
    m = tiny()
    ids, mask = inputs(b=3, s=8)
    names = [n for n, mod in m.named_modules() if isinstance(mod, torch.nn.Linear)]
    profile = {n: {"format": "dense-int8", "sparsity": 0.0} for n in names}
    calib = [inputs(b=3, s=8, seed=i) for i in range(4)]
    cm = spdy.compile(m, (ids, mask), profile=profile, calib=calib, tune=False, measure=False)
    lower = next(r for r in cm.passlog if r.get("pass") == "lower-to-tvm")
    # 12 layers: per encoder layer one merged query/key/value layer, attn_out, intermediate, output
    assert lower["stats"]["kernels"] == {"linear.dense-int8": 8, "attention.fused": 2}
    with torch.no_grad():
        ref = cm.pruned_model(ids, mask).numpy()
    np.testing.assert_allclose(np.asarray(cm(ids.numpy(), mask.numpy())), ref, atol=1e-5)
