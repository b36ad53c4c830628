"""merge_qkv: the query, key and value int8 layers of a fused attention call become one layer of
the stacked weights, computing the same; layers that differ in activation quantization, that the
profile keeps apart, or that run fp32 stay three (torch only, no TVM)."""
import pytest
import torch

from spdy.ir.attention_fusion import ATTENTION, attention_args, fuse_attention
from spdy.ir.layers import find_layers
from spdy.ir.ops import LINEAR, linear_args
from spdy.ir.qkv_merge import merge_qkv
from spdy.ir.quant import insert_quant_stubs, set_quant
from spdy.qscheme import ActQuant

from .test_attention_fusion import Attn, _canon, _inputs


def _graph(acts):
    """The explicit attention block with int8 stubs set to `acts` (by layer; None: fp32)."""
    model = Attn().eval()
    x, m = _inputs()
    gm = _canon(model, x, m)
    layers = {l.qualname: l for l in find_layers(gm)}
    insert_quant_stubs(gm, list(layers.values()))
    for name, act in acts.items():
        if act is not None:
            set_quant(gm, layers[name], act, torch.full((layers[name].weight_shape[0],), 0.01))
    assert fuse_attention(gm) == 1
    return gm, (x, m)


STATIC = ActQuant("static", 0.05, 128)


def test_int8_projections_with_one_quantization_become_one_layer():
    gm, (x, m) = _graph({"q": STATIC, "k": STATIC, "v": STATIC})
    with torch.no_grad():
        before = gm(x, m)
    assert merge_qkv(gm) == 1
    linears = [linear_args(n) for n in gm.graph.nodes if n.target is LINEAR]
    merged = [a for a in linears if a.name.startswith("merged.")]
    assert len(merged) == 1 and merged[0].name == "merged.q+k+v" and len(linears) == 2   # merged and o
    att = attention_args(next(n for n in gm.graph.nodes if n.target is ATTENTION))
    assert att.q is att.k is att.v and att.offsets == [0, 32, 64]
    with torch.no_grad():
        torch.testing.assert_close(gm(x, m), before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("acts,allow", [
    ({"q": STATIC, "k": ActQuant("static", 0.06, 128), "v": STATIC}, True),   # calibrated apart
    ({"q": STATIC, "k": STATIC, "v": STATIC}, False),                          # the profile says no
    ({}, True),                                                                # fp32 layers (stubs off)
])
def test_projections_it_cannot_merge_exactly_stay_three(acts, allow):
    gm, (x, m) = _graph(acts)
    assert merge_qkv(gm, lambda names: allow) == 0
    assert sum(n.target is LINEAR for n in gm.graph.nodes) == 4
