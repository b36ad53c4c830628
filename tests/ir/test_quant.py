"""int8 stubs on the graph: off is exact, on is the scheme's fake-quant, strip keeps only int8 layers."""
import numpy as np
import torch

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers
from spdy.ir.quant import LAYER_QUANT, insert_quant_stubs, set_quant, strip_quant
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model
from spdy.qscheme import ActQuant, dynamic_params_np, quantize_np


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 16)
        self.b = torch.nn.Linear(16, 4)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def _graph():
    torch.manual_seed(0)
    model = Net().eval()
    x = torch.randn(3, 8)
    inputs = normalize_inputs((x,))
    gm = trace_model(model, inputs).gm
    canonicalize(gm)
    run_shape_prop(gm, inputs)
    return model, gm, x


def test_off_stubs_are_exact_and_counted():
    model, gm, x = _graph()
    layers = find_layers(gm)
    assert insert_quant_stubs(gm, layers) == 2
    assert insert_quant_stubs(gm, find_layers(gm)) == 0          # idempotent
    assert torch.equal(gm(x), model(x))
    assert strip_quant(gm) == 0
    assert not any(n.target is LAYER_QUANT for n in gm.graph.nodes)
    assert torch.equal(gm(x), model(x))


def test_static_and_dynamic_stubs_fake_quantize_like_the_scheme():
    model, gm, x = _graph()
    insert_quant_stubs(gm, find_layers(gm))
    layers = {l.qualname: l for l in find_layers(gm)}
    set_quant(gm, layers["a"], ActQuant("static", 0.02, 128), torch.ones(16))
    q = quantize_np(x.numpy(), 0.02, 128).astype(np.float32)
    xq = torch.from_numpy((q - 128) * np.float32(0.02))
    expect_a = torch.relu(torch.nn.functional.linear(xq, model.a.weight, model.a.bias))
    expect = model.b(expect_a)
    torch.testing.assert_close(gm(x), expect, rtol=0, atol=1e-6)
    set_quant(gm, layers["b"], ActQuant("dynamic"), torch.ones(4))
    s, zp = dynamic_params_np(expect_a.detach().numpy())
    hq = (quantize_np(expect_a.detach().numpy(), s[:, None], zp[:, None]).astype(np.float32) - zp[:, None]) * s[:, None]
    torch.testing.assert_close(gm(x), model.b(torch.from_numpy(hq.astype(np.float32))), rtol=0, atol=1e-6)
    assert strip_quant(gm) == 2
    set_quant(gm, layers["a"], None)
    assert strip_quant(gm) == 1


def test_weight_scales_are_checked():
    _, gm, _ = _graph()
    insert_quant_stubs(gm, find_layers(gm))
    layer = find_layers(gm)[0]
    try:
        set_quant(gm, layer, ActQuant("static", 0.1, 0), torch.ones(3))
    except ValueError as e:
        assert "3 weight scales for 16" in str(e)
    else:
        raise AssertionError("mismatched scales accepted")
