"""Eval-mode identity calls (dropout, nn.Identity, torchvision's stochastic depth) are removed,
so the residual add behind them fuses into the layer (spdy/ir/identities.py)."""
import torch
import torch.fx
import torch.nn.functional as F

from spdy.ir.canonicalize import canonicalize
from spdy.ir.fuse import fuse_epilogues
from spdy.ir.identities import drop_eval_identities
from spdy.ir.trace import normalize_inputs, run_shape_prop, trace_model


def stochastic_depth(input, p: float, mode: str, training: bool = True):
    """torchvision.ops.stochastic_depth's signature; in eval (training=False) the identity."""
    if not training or p == 0.0:
        return input
    keep = torch.empty([input.shape[0]] + [1] * (input.dim() - 1)).bernoulli_(1 - p)
    return input * keep / (1 - p)


stochastic_depth.__module__ = "torchvision.ops.stochastic_depth"   # as torchvision defines it
torch.fx.wrap("stochastic_depth")


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(6, 6, 3, padding=1)
        self.drop, self.ident = torch.nn.Dropout(0.2), torch.nn.Identity()
        self.fc = torch.nn.Linear(6, 4)

    def forward(self, x):
        y = stochastic_depth(self.conv(x), 0.1, "row", self.training) + x
        y = self.ident(self.drop(y)).mean((2, 3))
        return F.dropout(self.fc(y), 0.3, training=self.training), F.dropout(y, 0.5)


def test_eval_identities_are_removed_and_the_residual_fuses():
    model, x = Block().eval(), torch.randn(2, 6, 5, 5)
    inputs = normalize_inputs((x,))
    gm = trace_model(model, inputs).gm
    stats = canonicalize(gm)
    assert stats["identities_removed"] == 4           # stochastic depth, Dropout, Identity, F.dropout(False)
    left = [n for n in gm.graph.nodes if n.target is F.dropout]
    assert len(left) == 1 and left[0].kwargs.get("training", True) is True   # F.dropout defaults to training
    run_shape_prop(gm, inputs)
    assert fuse_epilogues(gm)["residual"] == 1
    torch.manual_seed(0)
    got = gm(x)
    torch.manual_seed(0)
    ref = model(x)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-5, atol=1e-6)


def test_a_training_mode_module_is_kept():
    model = Block().train()
    gm = torch.fx.symbolic_trace(model)
    assert drop_eval_identities(gm) == 1               # only nn.Identity
