import numpy as np
import torch

from spdy.ir.canonicalize import canonicalize
from spdy.ir.fuse import fuse_epilogues
from spdy.ir.ops import SPDY_OPS
from spdy.ir.standardize import to_standard_ops
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


def test_standard_ops_compute_the_same(convnet, image):
    inputs = normalize_inputs(image)
    gm = trace_model(convnet, inputs).gm
    canonicalize(gm)
    run_shape_prop(gm, inputs)
    fuse_epilogues(gm)
    std = to_standard_ops(gm)
    assert not any(n.target in SPDY_OPS for n in std.graph.nodes)
    assert any(n.target in SPDY_OPS for n in gm.graph.nodes)  # the original is untouched
    torch.testing.assert_close(std(image), gm(image), rtol=0, atol=1e-6)


def test_export_onnx_runs_in_onnxruntime(tmp_path):
    ort = __import__("pytest").importorskip("onnxruntime")
    import spdy
    from spdy.models import mlp
    m, x = mlp(), torch.randn(1, 64)
    cm = spdy.compile(m, (x,), tune=False, measure=False)
    path = cm.export_onnx(tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(y, m(x).detach().numpy(), atol=1e-5)


def test_int8_layers_export_as_qdq_and_match_in_onnxruntime(tmp_path):
    ort = __import__("pytest").importorskip("onnxruntime")
    import onnx
    from spdy.ir.layers import find_layers
    from spdy.ir.quant import insert_quant_stubs, set_quant
    from spdy.ir.tensors import get_tensor, set_tensor
    from spdy.passes.algo.quantize import quantize_rtn, weight_scales
    from spdy.qscheme import ActQuant
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    x = torch.randn(4, 16)
    inputs = normalize_inputs((x,))
    gm = trace_model(model, inputs).gm
    canonicalize(gm)
    run_shape_prop(gm, inputs)
    fuse_epilogues(gm)
    insert_quant_stubs(gm, find_layers(gm))
    for layer, act in zip(find_layers(gm), [ActQuant("static", 0.03, 120), ActQuant("dynamic")]):
        w = get_tensor(gm, layer.weight)
        scale = weight_scales(w, "absmax")
        set_tensor(gm, layer.weight, quantize_rtn(w, scale)[1])
        set_quant(gm, layer, act, scale)
    std = to_standard_ops(gm)
    torch.testing.assert_close(std(x), gm(x), rtol=0, atol=1e-6)
    path = tmp_path / "q.onnx"
    torch.onnx.export(std, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x.numpy()})
    # QuantizeLinear divides by the scale where torch multiplies by its inverse: a rare
    # rounding tie may land one step apart, so compare with a tolerance of a few steps
    np.testing.assert_allclose(y, gm(x).detach().numpy(), atol=1e-3)
