"""expand_multihead_attention: a plain self-attention nn.MultiheadAttention call becomes two
spdy_linear layers around scaled_dot_product_attention, computing what the module computes;
calls with masks or used attention weights stay module calls (torch only, no TVM)."""
import pytest
import torch
from torch import nn

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


class Block(nn.Module):
    def __init__(self, batch_first=True, bias=True, need_weights=False, mask=False):
        super().__init__()
        self.ln = nn.LayerNorm(32)
        self.attn = nn.MultiheadAttention(32, 4, bias=bias, batch_first=batch_first)
        self.need_weights = need_weights
        self.register_buffer("mask", torch.zeros(7, 7) if mask else None)

    def forward(self, x):
        h = self.ln(x)
        mask = self.mask
        out, weights = self.attn(h, h, h, need_weights=self.need_weights, attn_mask=mask)
        return (x + out, weights) if self.need_weights else x + out


def _canon(model, x):
    inputs = normalize_inputs((x,))
    r = trace_model(model, inputs, method="fx")
    stats = canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    return r.gm, stats


@pytest.mark.parametrize("batch_first,bias", [(True, True), (False, True), (True, False)])
def test_projections_become_layers_and_the_block_computes_the_same(batch_first, bias):
    torch.manual_seed(0)
    model = Block(batch_first, bias).eval()
    x = torch.randn(2, 7, 32) if batch_first else torch.randn(7, 2, 32)
    gm, stats = _canon(model, x)
    assert stats["attention_opened"] == 1 and stats["linear"] == 2
    layers = {l.qualname: l for l in find_layers(gm)}
    assert set(layers) == {"attn.in_proj", "attn.out_proj"}
    assert layers["attn.in_proj"].weight_shape == (96, 32) and layers["attn.in_proj"].weight == "attn.in_proj_weight"
    assert not any(n.op == "call_module" and n.target == "attn" for n in gm.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)
        y = torch.randn(5, 7, 32) if batch_first else torch.randn(7, 5, 32)   # another batch size
        torch.testing.assert_close(gm(y), model(y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [{"need_weights": True}, {"mask": True}])
def test_calls_it_cannot_spell_stay_module_calls(kw):
    model = Block(**kw).eval()
    gm, stats = _canon(model, torch.randn(2, 7, 32))
    assert "attention_opened" not in stats and find_layers(gm) == []
    assert any(n.op == "call_module" and n.target == "attn" for n in gm.graph.nodes)
