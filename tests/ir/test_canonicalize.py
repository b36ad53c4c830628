import torch

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers
from spdy.ir.ops import CONV2D, LINEAR
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


def _canon(model, x, method="auto"):
    inputs = normalize_inputs(x)
    r = trace_model(model, inputs, method=method)
    stats = canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    return r.gm, stats


def test_conv_bn_folded_and_exact(convnet, image):
    ref = convnet(image)
    gm, stats = _canon(convnet, image)
    assert stats["bn_folded"] == 2 and stats["bn_affine"] == 1
    assert stats["conv2d"] == 4 and stats["linear"] == 1
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert targets.count(CONV2D) == 4 and targets.count(LINEAR) == 1
    assert not any(n.op == "call_module" and "bn" in n.target for n in gm.graph.nodes)
    torch.testing.assert_close(gm(image), ref, rtol=1e-5, atol=1e-5)


def test_export_form_gives_same_layers(convnet, image):
    gm_fx, _ = _canon(convnet, image, "fx")
    gm_ex, _ = _canon(convnet, image, "export")
    sig = lambda gm: [(l.qualname, l.signature) for l in find_layers(gm)]  # noqa: E731
    assert sig(gm_fx) == sig(gm_ex)
    torch.testing.assert_close(gm_ex(image), convnet(image), rtol=1e-5, atol=1e-5)


def test_user_model_is_not_mutated(convnet, image):
    before = {k: v.clone() for k, v in convnet.state_dict().items()}
    import spdy.passes.trace as tp
    from spdy.passes.context import CompileContext
    ctx = CompileContext(model=convnet, inputs=normalize_inputs(image), target=None)
    res = tp.TracePass().run(None, ctx)
    canonicalize(res.gm)
    for k, v in convnet.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_same_padding_and_functional_forms():
    class F(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 2, 4, 4))
            self.lin = torch.nn.Parameter(torch.randn(3, 4))

        def forward(self, x):
            y = torch.nn.functional.conv2d(x, self.w, padding="same")  # even kernel: asymmetric pads
            return torch.nn.functional.linear(y.mean((2, 3)), self.lin)

    m, x = F().eval(), torch.randn(1, 2, 7, 7)
    gm, stats = _canon(m, x)
    assert stats["conv2d"] == 1 and stats["linear"] == 1
    (conv,) = [l for l in find_layers(gm) if l.kind == "conv2d"]
    assert conv.padding == (1, 1, 2, 2)
    torch.testing.assert_close(gm(x), m(x), rtol=1e-5, atol=1e-5)
