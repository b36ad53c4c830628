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
