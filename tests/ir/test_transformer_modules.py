"""spdy's fx tracer goes through plain nn.TransformerEncoder / nn.TransformerEncoderLayer
calls, so their Linear layers and attention projections become spdy layers, computing what
torch computes; a call with a mask stays one module call (torch only, no TVM)."""
import pytest
import torch
from torch import nn

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


class Model(nn.Module):
    def __init__(self, norm_first=False, activation="relu", batch_first=True, final_norm=True, masked=False):
        super().__init__()
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, activation=activation,
                                           batch_first=batch_first, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(32) if final_norm else None,
                                             enable_nested_tensor=False)
        self.head = nn.Linear(32, 3)
        self.register_buffer("mask", torch.zeros(5, 5) if masked else None)

    def forward(self, x):
        h = self.encoder(x, mask=self.mask) if self.mask is not None else self.encoder(x)
        return self.head(h)


def _layers(model, x):
    inputs = normalize_inputs((x,))
    r = trace_model(model, inputs, method="fx")
    canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    return r.gm, {l.qualname for l in find_layers(r.gm)}


@pytest.mark.parametrize("kw", [{}, {"norm_first": True, "activation": "gelu"}, {"batch_first": False},
                                {"final_norm": False}])
def test_encoder_layers_become_spdy_layers_and_compute_the_same(kw):
    torch.manual_seed(0)
    model = Model(**kw).eval()
    x = torch.randn(2, 5, 32) if kw.get("batch_first", True) else torch.randn(5, 2, 32)
    gm, layers = _layers(model, x)
    per_layer = {"self_attn.in_proj", "self_attn.out_proj", "linear1", "linear2"}
    assert layers == {f"encoder.layers.{i}.{n}" for i in range(2) for n in per_layer} | {"head"}
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-5, atol=1e-5)


def test_a_masked_call_stays_one_module_call():
    model = Model(masked=True).eval()
    gm, layers = _layers(model, torch.randn(2, 5, 32))
    assert layers == {"head"} and any(n.op == "call_module" and n.target == "encoder" for n in gm.graph.nodes)
