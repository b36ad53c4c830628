"""make_lowerable: in-place ops functionalized, ops without an emitter decomposed by torch's
tables, everything else left as the emitters expect it (torch only, no TVM)."""
import torch

from spdy.ir.decompose import decomposition_of, make_lowerable, op_name, unknown_ops

aten = torch.ops.aten
# a stand-in for the importer's table: enough plain ops for the modules below
KNOWN = {"linear.default", "mul.Tensor", "add.Tensor", "sub.Tensor", "transpose.int", "view.default",
         "zeros.default", "slice.Tensor", "slice_scatter.default", "fill.Scalar", "fill.Tensor", "clone.default",
         "copy.default", "tanh.default", "getitem", "_assert_tensor_metadata.default", "permute.default",
         "expand.default", "reshape.default", "lift_fresh_copy.default"}


def _ops(ep) -> set[str]:
    return {op_name(n.target) for n in ep.graph.nodes if n.op == "call_function"}


class FillSwapLerp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)

    def forward(self, x):
        m = torch.zeros(x.shape[0], 8)
        m[:, :4].fill_(torch.tensor(2.0))          # fill_.Tensor on a view of a graph-owned tensor
        y = self.fc(x) * m
        y = torch.lerp(y, torch.tanh(y), 0.25)
        return torch.swapaxes(y.reshape(x.shape[0], 2, 4), 1, 2)


def test_in_place_and_unknown_ops_are_rewritten_and_the_program_still_computes_the_same():
    model, x = FillSwapLerp().eval(), torch.randn(3, 8)
    ep = torch.export.export(model, (x,), strict=False)
    assert {"fill_.Tensor", "lerp.Scalar", "swapaxes.default"} <= _ops(ep)
    out, stats = make_lowerable(ep, KNOWN.__contains__)
    assert not ({"fill_.Tensor", "lerp.Scalar", "swapaxes.default"} & _ops(out))
    assert "linear.default" in _ops(out)                 # known ops are not decomposed
    assert "fill_.Tensor" in stats["in_place"] and "lerp.Scalar" in stats["decomposed"]
    torch.testing.assert_close(out.module()(x), model(x))


def test_a_program_with_nothing_to_do_comes_back_unchanged():
    ep = torch.export.export(torch.nn.Linear(4, 4).eval(), (torch.randn(2, 4),), strict=False)
    out, stats = make_lowerable(ep, KNOWN.__contains__)
    assert out is ep and stats["decomposed"] == []


def test_ops_left_over_name_the_op_the_model_called():
    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.special.erfinv(torch.tanh(x)) + torch.searchsorted(torch.tensor([0.0, 1.0]), x)

    ep = torch.export.export(Odd(), (torch.randn(4, 4),), strict=False)
    out, _ = make_lowerable(ep, KNOWN.__contains__)
    left = unknown_ops(out, KNOWN.__contains__)
    assert "searchsorted.Tensor" in left                                   # no decomposition exists
    assert any(k.endswith("(from special_erfinv.default)") for k in left)  # decomposed into a prim


def test_decomposition_sources():
    assert decomposition_of(aten.lerp.Scalar) is not None          # core ATen table
    assert decomposition_of(aten.swapaxes.default) is not None     # composite kernel
    assert decomposition_of(aten.searchsorted.Tensor) is None
