"""Named accessors for the spdy ops' arguments (spdy/ir/ops.py): the one place that knows
their positions."""
from __future__ import annotations

import pytest
import torch

from spdy.ir.ops import (CONV2D, LINEAR, ConvArgs, LinearArgs, conv_args, is_layer, layer_activation, layer_args,
                         layer_name, layer_residual, linear_args, replace_args)


def _canonical(model, x):
    from spdy.ir.trace import normalize_inputs
    from spdy.passes.context import CompileContext
    from spdy.pipelines import frontend_pipeline
    ctx = CompileContext(model=model, inputs=normalize_inputs((x,)), target=None)
    gm, _ = frontend_pipeline().run(None, ctx)
    return gm


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = torch.relu(self.conv(x) + x)
        return self.fc(y.mean((2, 3)))


def test_accessors_read_the_canonical_graph():
    gm = _canonical(Block().eval(), torch.randn(1, 4, 8, 8))
    conv = next(n for n in gm.graph.nodes if n.target is CONV2D)
    fc = next(n for n in gm.graph.nodes if n.target is LINEAR)
    a = conv_args(conv)
    assert isinstance(a, ConvArgs) and a.name == "conv" and a.activation == "relu" and a.groups == 1
    assert tuple(a.padding) == (1, 1, 1, 1) and a.residual is not None and layer_residual(conv) is a.residual
    assert isinstance(layer_args(fc), LinearArgs) and linear_args(fc).name == layer_name(fc) == "fc"
    assert layer_activation(fc) == "none" and layer_residual(fc) is None
    assert is_layer(conv) and not is_layer(a.x) and tuple(a) == conv.args


def test_replace_args_and_wrong_nodes():
    gm = _canonical(Block().eval(), torch.randn(1, 4, 8, 8))
    conv = next(n for n in gm.graph.nodes if n.target is CONV2D)
    fc = next(n for n in gm.graph.nodes if n.target is LINEAR)
    new = replace_args(conv, activation="none", residual=None)
    assert conv_args(conv)._replace(activation="none", residual=None) == ConvArgs(*new)
    with pytest.raises(TypeError, match="spdy_linear"):
        linear_args(conv)
    with pytest.raises(TypeError, match="spdy_conv2d"):
        conv_args(fc)
    with pytest.raises(TypeError, match="not a spdy layer op"):
        layer_args(conv_args(conv).x)
