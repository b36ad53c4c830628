"""visit_layer_inputs runs the graph on calibration batches of any sequence length it accepts,
and names the batch when a graph traced for one length does not accept another."""
import pytest
import torch
import torch.fx
from torch import nn

from spdy.errors import CalibrationError
from spdy.passes.layer_inputs import layer_rows, visit_layer_inputs


class AnyLength(nn.Module):
    """Embedding, a linear per token, masked mean pooling: runs on any sequence length."""

    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(50, 8), nn.Linear(8, 4)

    def forward(self, ids, mask):
        h = self.fc(self.emb(ids))
        m = mask.unsqueeze(-1).float()
        return (h * m).sum(1) / m.sum(1)


class OneLength(nn.Module):
    """Flattens the tokens into one feature vector: only the traced length fits its head."""

    def __init__(self, length=6):
        super().__init__()
        self.emb, self.head = nn.Embedding(50, 2), nn.Linear(2 * length, 3)

    def forward(self, ids, mask):
        return self.head((self.emb(ids) * mask.unsqueeze(-1)).flatten(1))


def _front_end(model):
    """(graph, layers) after spdy's front end, traced on ids and mask of length 6."""
    from spdy.passes.context import CompileContext
    from spdy.passes.pipeline import Pipeline
    from spdy.pipelines import frontend_passes
    from spdy.ir.trace import normalize_inputs
    ids = torch.randint(0, 50, (2, 6))
    ctx = CompileContext(model=model.eval(), inputs=normalize_inputs((ids, torch.ones_like(ids))), instruments=[])
    gm, _ = Pipeline(frontend_passes()).run(None, ctx)
    return gm, list(ctx.artifacts["layers"])


def test_batches_of_several_lengths_give_every_token_row():
    gm, layers = _front_end(AnyLength())
    assert len(layers) == 1
    rows = []
    batches = [(torch.randint(0, 50, (3, n)), torch.ones(3, n, dtype=torch.long)) for n in (2, 6, 4)]
    nodes = {n.name: n for n in gm.graph.nodes}
    node = {l.qualname: nodes[l.node] for l in layers}
    visit_layer_inputs(gm, batches, layers, lambda name, _, x: rows.append(layer_rows(x, node[name]).shape[0]))
    assert rows == [6, 18, 12]


def test_a_graph_of_one_length_names_the_batch_that_does_not_fit():
    gm, layers = _front_end(OneLength())
    ok = (torch.randint(0, 50, (2, 6)), torch.ones(2, 6, dtype=torch.long))
    short = (torch.randint(0, 50, (2, 4)), torch.ones(2, 4, dtype=torch.long))
    visit_layer_inputs(gm, [ok], layers, lambda *a: None)
    with pytest.raises(CalibrationError, match=r"calibration batch 1 .*pad the calibration batches"):
        visit_layer_inputs(gm, [ok, short], layers, lambda *a: None)
    # a failure on batches of one shape is the model's own error, passed on unchanged
    with pytest.raises(RuntimeError):
        visit_layer_inputs(gm, [short], layers, lambda *a: None)
