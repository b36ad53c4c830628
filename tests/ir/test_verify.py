"""spdy/ir/verify.py: a sound canonical graph has no problems, and each invariant, broken,
is named."""
from __future__ import annotations

import operator

import pytest
import torch

from spdy.ir import meta
from spdy.ir.masks import mask_path
from spdy.ir.ops import layer_args, replace_args
from spdy.ir.quant import act_path, scale_path, set_quant
from spdy.ir.tensors import get_tensor, set_tensor
from spdy.ir.trace import normalize_inputs
from spdy.ir.verify import GraphInvariantError, check_graph, graph_problems
from spdy.passes.context import CompileContext
from spdy.passes.insert_masks import InsertMasksPass
from spdy.passes.insert_quant_stubs import InsertQuantStubsPass
from spdy.pipelines import frontend_pipeline
from spdy.qscheme import ActQuant


def _graph(convnet, image, *then):
    ctx = CompileContext(model=convnet, inputs=normalize_inputs(image), target=None, instruments=[])
    gm, _ = frontend_pipeline(*then).run(None, ctx)
    return gm, ctx.artifacts["layers"]


@pytest.fixture
def masked(convnet, image):
    return _graph(convnet, image, InsertMasksPass(), InsertQuantStubsPass())


def _node(gm, layer):
    return next(n for n in gm.graph.nodes if n.name == layer.node)


def _one(gm, layers=None) -> str:
    problems = graph_problems(gm, layers)
    assert len(problems) >= 1, "the broken invariant was not found"
    return " | ".join(problems)


def test_sound_graphs_have_no_problems(convnet, image, masked):
    gm, layers = _graph(convnet, image)
    assert graph_problems(gm, layers) == []
    gm, layers = masked
    assert graph_problems(gm, layers) == []
    check_graph(gm, layers)
    # an int8 stub switched on with the weight on its grid is sound too
    layer = layers[-1]
    w = get_tensor(gm, layer.weight)
    scale = w.abs().amax(dim=1) / 127
    set_tensor(gm, layer.weight, torch.round(w / scale[:, None]) * scale[:, None])
    set_quant(gm, layer, ActQuant("static", 0.05, 128), scale)
    assert graph_problems(gm, layers) == []


def test_lint(masked):
    gm, layers = masked
    first = next(iter(gm.graph.nodes))
    first.prepend(_node(gm, layers[0]))       # a layer before its input exists
    assert "graph lint" in _one(gm)


def test_weights_and_biases_are_constants(convnet, image):
    gm, layers = _graph(convnet, image)
    node = _node(gm, layers[-1])
    a = layer_args(node)
    with gm.graph.inserting_before(node):
        scaled = gm.graph.call_function(operator.mul, (a.weight, 2.0))
    node.args = replace_args(node, weight=scaled)
    assert "weight is not a constant tensor" in _one(gm)
    node.args = replace_args(node, weight=a.weight)
    set_tensor(gm, a.bias.target, torch.zeros(3))
    assert "bias shape (3,) != (5,)" in _one(gm)


def test_masks(masked):
    gm, layers = masked
    layer = layers[0]
    get_tensor(gm, mask_path(layer))[0, 0, 0, 0] = 0.5
    assert f"layer {layer.qualname}" in _one(gm) and "values other than 0 and 1" in _one(gm)
    set_tensor(gm, mask_path(layer), torch.ones(3, 3), parameter=False)
    assert "mask shape (3, 3) != weight shape" in _one(gm)
    _node(gm, layer).meta[meta.MASK] = "somewhere.else"
    assert "its mask is not the constant 'somewhere.else'" in _one(gm)


def test_int8_stubs(masked):
    gm, layers = masked
    layer = layers[-1]
    node = _node(gm, layer)
    set_quant(gm, layer, ActQuant("static", 0.05, 128), torch.full((layer.weight_shape[0],), 1e-3))
    assert "not on its int8 grid" in _one(gm)
    get_tensor(gm, act_path(layer))[0] = 5
    assert "act must be [mode 0/1/2" in _one(gm)
    get_tensor(gm, act_path(layer)).zero_()
    set_tensor(gm, scale_path(layer), torch.ones(2), parameter=False)
    assert "(2,) weight scales for 5 output channels" in _one(gm)
    set_tensor(gm, scale_path(layer), torch.ones(layer.weight_shape[0]), parameter=False)
    node.meta.pop(meta.QUANT)
    assert "meta spdy.quant says no int8 stub, the input says a stub" in _one(gm)


def test_layer_records_match_the_graph(convnet, image, masked):
    gm, layers = masked
    stale = [layers[0].__class__(**{**layers[0].__dict__, "in_shape": (9, 9)}), *layers[1:]]
    assert "layer record of conv1 is stale (in_shape: record (9, 9)" in _one(gm, stale)
    assert "layer records name" in _one(gm, layers[1:])
    with pytest.raises(GraphInvariantError, match="refresh ctx.artifacts\\['layers'\\]"):
        check_graph(gm, layers[::-1])
