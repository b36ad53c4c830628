import pytest
import torch

from spdy.errors import InputShapeError, TraceError
from spdy.ir.trace import normalize_inputs, trace_model


class ShapeBranch(torch.nn.Module):
    """fx cannot trace Python control flow on a shape; torch.export can (static shapes)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x):
        if x.shape[0] > 1:
            return self.fc(x) * 2
        return self.fc(x)


class DataBranch(torch.nn.Module):
    """Control flow on tensor values: neither tracer can handle it."""

    def forward(self, x):
        if x.sum() > 0:
            return x + 1
        return x - 1


def test_fx_first(convnet, image):
    r = trace_model(convnet, normalize_inputs(image))
    assert r.method == "fx"
    assert any(n.op == "call_module" for n in r.gm.graph.nodes)
    assert all("tensor_meta" in n.meta for n in r.gm.graph.nodes if n.op == "call_module")


def test_falls_back_to_export():
    r = trace_model(ShapeBranch().eval(), normalize_inputs(torch.randn(2, 4)))
    assert r.method == "export"
    assert "symbolic_trace" not in (r.fx_error or "") and r.fx_error
    torch.testing.assert_close(r.gm(torch.ones(2, 4)), ShapeBranch().eval().fc(torch.ones(2, 4)) * 2,
                               rtol=0, atol=1e3)  # ran; exact values depend on the fresh init


def test_untraceable_names_both_failures():
    with pytest.raises(TraceError) as e:
        trace_model(DataBranch(), normalize_inputs(torch.randn(3)))
    msg = str(e.value)
    assert "symbolic_trace failed" in msg and "torch.export failed" in msg
    assert "test_trace.py" in msg  # points at the offending line of user code


def test_wrong_input_shape_is_clear(convnet):
    with pytest.raises(InputShapeError) as e:
        trace_model(convnet, normalize_inputs(torch.randn(1, 5, 16, 16)))
    assert "input0=(1, 5, 16, 16)" in str(e.value)


def test_normalize_inputs_forms():
    t = torch.zeros(2)
    assert len(normalize_inputs(t).args) == 1
    assert normalize_inputs([t, t]).names == ["input0", "input1"]
    assert normalize_inputs({"ids": t}).names == ["ids"]
    with pytest.raises(InputShapeError):
        normalize_inputs([t, 3])
