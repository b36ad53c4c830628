import torch

from spdy.ir.canonicalize import canonicalize
from spdy.ir.fuse import fuse_epilogues
from spdy.ir.ops import CONV2D, is_layer, layer_activation
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model
from spdy.models import mnist_resnet


def _fused(model, x):
    inputs = normalize_inputs(x)
    r = trace_model(model, inputs)
    canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    stats = fuse_epilogues(r.gm)
    return r.gm, stats


def test_residual_and_relu_fused(convnet, image):
    ref = convnet(image)
    gm, stats = _fused(convnet, image)
    assert stats == {"residual": 1, "activation": 3}
    convs = [n for n in gm.graph.nodes if n.target is CONV2D]
    grouped = next(n for n in convs if n.args[-1] == "grouped")
    assert grouped.args[3] is not None and grouped.args[8] == "relu"
    torch.testing.assert_close(gm(image), ref, rtol=1e-5, atol=1e-5)


def test_not_fused_when_intermediate_has_other_users():
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x):
            y = self.fc(x)
            return torch.relu(y), y

    gm, stats = _fused(Two().eval(), torch.randn(2, 4))
    assert stats == {"residual": 0, "activation": 0}


def test_resnet_blocks_fuse_fully():
    m = mnist_resnet()
    x = torch.randn(1, 1, 28, 28)
    gm, stats = _fused(m, x)
    assert stats["residual"] == 3
    assert not any(n.op == "call_module" for n in gm.graph.nodes if "relu" in str(n.target))
    torch.testing.assert_close(gm(x), m(x), rtol=1e-4, atol=1e-5)


def test_efficientnet_and_mobilenet_activations_fuse_into_their_layers():
    """SiLU, hardswish, sigmoid and hardsigmoid (EfficientNet, MobileNetV3 and their
    squeeze-excitation blocks), as modules and as functions, become the layer's epilogue."""
    class SE(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
            self.act = torch.nn.SiLU(inplace=True)
            self.fc1, self.fc2 = torch.nn.Conv2d(8, 4, 1), torch.nn.Conv2d(4, 8, 1)
            self.gate = torch.nn.Hardsigmoid()
            self.head = torch.nn.Linear(8, 6)

        def forward(self, x):
            y = self.act(self.conv(x))
            s = torch.nn.functional.hardswish(self.fc1(y.mean((2, 3), keepdim=True)))
            y = y * self.gate(self.fc2(s))
            return torch.sigmoid(self.head(y.mean((2, 3))))

    model, x = SE().eval(), torch.randn(2, 4, 9, 9)
    ref = model(x)
    gm, stats = _fused(model, x)
    assert stats == {"residual": 0, "activation": 4}
    acts = sorted(layer_activation(n) for n in gm.graph.nodes if is_layer(n))
    assert acts == ["hardsigmoid", "hardswish", "sigmoid", "silu"]
    torch.testing.assert_close(gm(x), ref, rtol=1e-5, atol=1e-6)
