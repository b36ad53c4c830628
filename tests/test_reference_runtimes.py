"""The reference runtimes of cm.report: PyTorch eager, and onnxruntime when it is installed."""
import sys

import numpy as np
import pytest
import torch

from spdy.ir.trace import normalize_inputs
from spdy.passes.context import CompileContext, CompileOptions
from spdy.reference_runtimes import reference_fns, reference_summary


def _ctx(model, x, **options):
    return CompileContext(model=model, inputs=normalize_inputs((x,)), target=None, options=CompileOptions(**options))


def test_onnxruntime_runs_the_dense_model_once_exported(convnet, image):
    pytest.importorskip("onnxruntime")
    ctx = _ctx(convnet, image)
    fns = reference_fns(ctx, threads=1)
    assert set(fns) == {"torch_eager", "onnxruntime"}
    out = fns["onnxruntime"]()[0]
    np.testing.assert_allclose(out, convnet(image).detach().numpy(), atol=1e-4)
    session = ctx.artifacts["onnxruntime_session"]
    reference_fns(ctx, threads=1)  # a second round (budget correction) reuses the session
    assert ctx.artifacts["onnxruntime_session"] is session


def test_missing_onnxruntime_is_a_note_not_an_error(convnet, image, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ImportError
    ctx = _ctx(convnet, image)
    assert set(reference_fns(ctx, threads=1)) == {"torch_eager"}
    assert "not installed" in ctx.artifacts["reference_notes"]["onnxruntime"]


def test_export_failure_is_a_note(convnet, image, monkeypatch):
    pytest.importorskip("onnxruntime")

    def refuse(*a, **k):
        raise RuntimeError("unsupported operator aten::frobnicate")
    monkeypatch.setattr(torch.onnx, "export", refuse)
    ctx = _ctx(convnet, image)
    assert set(reference_fns(ctx, threads=1)) == {"torch_eager"}
    assert "aten::frobnicate" in ctx.artifacts["reference_notes"]["onnxruntime"]


def test_can_be_switched_off(convnet, image):
    ctx = _ctx(convnet, image, compare_onnxruntime=False)
    assert set(reference_fns(ctx, threads=1)) == {"torch_eager"}
    assert "onnxruntime_session" not in ctx.artifacts and "reference_notes" not in ctx.artifacts


def test_summary_ratios():
    res = {"torch_eager": {"median_ms": 6.0}, "onnxruntime": {"median_ms": 3.0}}
    assert reference_summary(res, 2.0) == {"speedup_vs_torch_eager": 3.0, "speedup_vs_onnxruntime": 1.5}
    assert reference_summary({"torch_eager": {"median_ms": 6.0}}, 2.0)["speedup_vs_onnxruntime"] is None
