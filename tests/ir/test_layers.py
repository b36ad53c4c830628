import torch

from spdy.ir.canonicalize import canonicalize
from spdy.ir.layers import find_layers, prunable_modules
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


def _layers(model, x):
    inputs = normalize_inputs(x)
    r = trace_model(model, inputs)
    canonicalize(r.gm)
    run_shape_prop(r.gm, inputs)
    return {l.qualname: l for l in find_layers(r.gm)}


def test_layer_records(convnet, image):
    L = _layers(convnet, image)
    assert list(L) == ["conv1", "dw", "grouped", "strided", "fc"]
    assert L["dw"].depthwise and not L["dw"].grouped
    assert L["grouped"].grouped and L["grouped"].dilation == (2, 2) and L["grouped"].groups == 2
    assert L["strided"].stride == (2, 2) and L["strided"].padding == (2, 2, 2, 2)
    assert L["conv1"].in_shape == (1, 3, 16, 16) and L["conv1"].out_shape == (1, 8, 16, 16)
    assert L["fc"].kind == "linear" and L["fc"].weight_shape == (5, 12)
    assert L["conv1"].has_bias  # BN folding created a bias
    assert L["strided"].signature == "conv2d:n1_c8_h16_w16_o12_k5x5_s2x2_p2x2x2x2_d1x1_g2".replace("_g2", "_g1")
    assert L["fc"].signature == "linear:m1_k12_n5"
    assert L["conv1"].flops == 16 * 16 * 8 * 3 * 9


def test_signature_is_shared_between_identical_layers():
    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            return self.b(self.a(x))

    L = _layers(Twin().eval(), torch.randn(4, 8))
    assert L["a"].signature == L["b"].signature == "linear:m4_k8_n8"


def test_prunable_modules(convnet):
    assert set(prunable_modules(convnet)) == {"conv1", "dw", "grouped", "strided", "fc"}
