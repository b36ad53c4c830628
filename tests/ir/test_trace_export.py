"""The torch.export fallback: the batch dimension stays free (calibration batches of any size
run through the traced graph) and export's no-op nodes are gone from the graph spdy keeps."""
import torch

from spdy.ir.trace import batch_dynamic_shapes, normalize_inputs, trace_model

aten = torch.ops.aten


class LoopOverTime(torch.nn.Module):
    """fx cannot trace `range(x.shape[1])`; torch.export can."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 4)

    def forward(self, x, mask):
        h = torch.zeros_like(x[:, 0])
        for t in range(x.shape[1]):
            h = torch.tanh(self.fc(x[:, t]) + h) * mask[:, t:t + 1].to(x.device, torch.float32)
        return h.to(x.device)


def _targets(gm):
    return {n.target for n in gm.graph.nodes if n.op == "call_function"}


def test_batch_of_one_traces_to_a_graph_for_any_batch():
    model = LoopOverTime().eval()
    x, mask = torch.randn(1, 3, 4), torch.ones(1, 3, dtype=torch.long)
    r = trace_model(model, normalize_inputs((x, mask)))
    assert r.method == "export" and "fx" not in (r.fx_error or "fx")
    for b in (1, 5):
        xb, mb = torch.randn(b, 3, 4), torch.randint(0, 2, (b, 3))
        torch.testing.assert_close(r.gm(xb, mb), model(xb, mb))
    targets = _targets(r.gm)
    assert aten._assert_tensor_metadata.default not in targets
    # the three casts of the mask stay; h.to(x.device), which changes nothing, is gone
    casts = [n for n in r.gm.graph.nodes if n.target is aten.to.device]
    assert len(casts) == 3 and all(n.meta["val"].dtype == torch.float32 for n in casts)


def test_a_model_that_fixes_its_batch_is_exported_for_the_example_shape():
    class FixedBatch(torch.nn.Module):
        def forward(self, x):
            return x.reshape(2, -1)[:, :3] + 0   # reshape(2, ...) pins the batch to 2

    x = torch.randn(2, 3, 4)
    model = FixedBatch()
    r = trace_model(model, normalize_inputs((x,)), method="export")
    torch.testing.assert_close(r.gm(x), model(x))


def test_dynamic_shapes_name_forward_parameters():
    spec = batch_dynamic_shapes(LoopOverTime(), normalize_inputs((torch.randn(2, 3, 4), torch.ones(2, 3))))
    assert set(spec) == {"x", "mask"} and spec["x"][0] is spec["mask"][0]
    assert batch_dynamic_shapes(LoopOverTime(), normalize_inputs((torch.randn(2, 3, 4), torch.ones(3, 3)))) is None


def test_token_inputs_free_their_sequence_axis_up_to_the_example_length():
    ids, mask = torch.randint(0, 9, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    spec = batch_dynamic_shapes(LoopOverTime(), normalize_inputs((ids, mask)), seq=True)
    assert spec["x"][1] is spec["mask"][1] and spec["x"][1].max == 6
    assert set(batch_dynamic_shapes(LoopOverTime(), normalize_inputs((ids, mask)))["x"]) == {0}
    floats = batch_dynamic_shapes(LoopOverTime(), normalize_inputs((torch.randn(2, 3, 4), mask)), seq=True)
    assert set(floats["x"]) == {0} and set(floats["mask"]) == {0, 1}
