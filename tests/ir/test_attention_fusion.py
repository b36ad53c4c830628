"""fuse_attention: spelled-out multi-head attention (explicit softmax or scaled_dot_product_attention
between head split and merge) becomes one spdy_attention call computing the same; any block it
cannot take exactly stays as it is (torch only, no TVM)."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spdy.ir.attention_fusion import ATTENTION, attention_args, attention_candidates, fuse_attention
from spdy.ir.canonicalize import canonicalize
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


class Attn(nn.Module):
    """BERT-style self-attention with the spellings users write (`style`)."""

    def __init__(self, style="explicit", heads=4, hidden=32, mask="key", probs_out=False, scale_by="div"):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.heads, self.d = heads, hidden // heads
        self.style, self.mask, self.probs_out, self.scale_by = style, mask, probs_out, scale_by

    def split(self, t):
        b, s, _ = t.shape
        if self.style == "transpose":
            return t.view(b, s, self.heads, self.d).transpose(1, 2)
        return t.reshape(b, s, self.heads, self.d).permute(0, 2, 1, 3)

    def forward(self, x, m):
        b, s, h = x.shape
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        bias = ((1.0 - m) * -10000.0)[:, None, None, :]
        if self.mask == "per_head":
            bias = bias.expand(b, self.heads, s, s)
        if self.style == "sdpa":
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias if self.mask else None)
            probs = None
        else:
            scores = torch.matmul(q, k.transpose(-1, -2))
            scores = scores / math.sqrt(self.d) if self.scale_by == "div" else scores * (1 / math.sqrt(self.d))
            if self.mask:
                scores = scores + bias
            probs = torch.softmax(scores, dim=-1)
            ctx = torch.matmul(probs, v)
        ctx = ctx.transpose(1, 2).contiguous().view(b, s, h) if self.style == "transpose" \
            else ctx.permute(0, 2, 1, 3).reshape(b, s, h)
        y = self.o(ctx)
        return (y, probs) if self.probs_out else y


def _canon(model, *xs):
    inputs = normalize_inputs(xs)
    r = trace_model(model, inputs, method="fx")
    canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    return r.gm


def _inputs(b=2, s=7, hidden=32):
    torch.manual_seed(0)
    m = torch.ones(b, s)
    m[0, -2:] = 0
    return torch.randn(b, s, hidden), m


@pytest.mark.parametrize("style,mask,scale_by", [("explicit", "key", "div"), ("explicit", None, "mul"),
                                                 ("transpose", "key", "div"), ("sdpa", "key", None),
                                                 ("sdpa", None, None)])
def test_attention_blocks_become_one_call_computing_the_same(style, mask, scale_by):
    model = Attn(style, mask=mask, scale_by=scale_by).eval()
    x, m = _inputs()
    gm = _canon(model, x, m)
    assert attention_candidates(gm) == 1
    assert fuse_attention(gm) == 1
    calls = [n for n in gm.graph.nodes if n.target is ATTENTION]
    assert len(calls) == 1
    a = attention_args(calls[0])
    assert (a.heads, a.head_dim, a.offsets) == (4, 8, [0, 0, 0]) and a.scale == pytest.approx(1 / math.sqrt(8))
    assert not any(n.op == "call_function" and n.target in (torch.matmul, torch.softmax) for n in gm.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(gm(x, m), model(x, m), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [{"probs_out": True}, {"mask": "per_head"}])
def test_blocks_it_cannot_take_exactly_stay(kw):
    model = Attn(**kw).eval()
    x, m = _inputs()
    gm = _canon(model, x, m)
    assert fuse_attention(gm) == 0
    assert not any(n.target is ATTENTION for n in gm.graph.nodes)


def test_hugging_face_spelling_with_a_bool_mask_is_taken():
    """transformers' sdpa path: view + transpose(1, 2), a bool keep-mask [B, 1, S, S], an explicit
    scale, and a same-shape reshape before the merge's transpose."""
    class HF(Attn):
        def forward(self, x, m):
            b, s, h = x.shape
            q, k, v = (self.split(f(x)) for f in (self.q, self.k, self.v))
            keep = m.bool()[:, None, None, :].expand(b, 1, s, s)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.3)
            ctx = ctx.reshape(b, self.heads, s, self.d).transpose(1, 2).reshape(b, s, h)
            return self.o(ctx)

    model = HF(style="transpose").eval()
    x, m = _inputs()
    gm = _canon(model, x, m)
    assert fuse_attention(gm) == 1
    a = attention_args(next(n for n in gm.graph.nodes if n.target is ATTENTION))
    assert a.scale == pytest.approx(0.3)
    with torch.no_grad():
        torch.testing.assert_close(gm(x, m), model(x, m), rtol=1e-5, atol=1e-5)


def test_a_causal_sdpa_and_a_refused_shape_stay():
    class Causal(Attn):
        def forward(self, x, m):
            b, s, h = x.shape
            q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
            ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.o(ctx.permute(0, 2, 1, 3).reshape(b, s, h))

    x, m = _inputs()
    assert fuse_attention(_canon(Causal().eval(), x, m)) == 0
    assert fuse_attention(_canon(Attn().eval(), x, m), fusable=lambda s, sk, d: False) == 0
