"""A model with nn.MultiheadAttention compiles with its projections as layers: dense it matches
PyTorch, and a profile prunes the packed in_proj and the out_proj on spdy's sparse kernels."""
import numpy as np
import pytest
import torch
from torch import nn

import spdy


class Encoder(nn.Module):
    def __init__(self, d=64, heads=4, batch_first=True):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=batch_first)
        self.ln, self.fc = nn.LayerNorm(d), nn.Linear(d, 10)

    def forward(self, x):
        h = self.ln(x)
        return self.fc(x + self.attn(h, h, h, need_weights=False)[0])


@pytest.mark.parametrize("batch_first", [True, False])
def test_dense_matches_pytorch(batch_first):
    torch.manual_seed(0)
    model = Encoder(batch_first=batch_first).eval()
    x = torch.randn(2, 12, 64) if batch_first else torch.randn(12, 2, 64)
    cm = spdy.compile(model, (x,), tune=False, measure=False, progress=False)
    assert next(p for p in cm.passlog if p["pass"] == "lower-to-tvm")["stats"]["kernels"]["linear.dense"] == 3
    with torch.no_grad():
        np.testing.assert_allclose(cm(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)


def test_a_profile_prunes_and_quantizes_both_projections():
    torch.manual_seed(0)
    model, x = Encoder().eval(), torch.randn(1, 12, 64)
    calib = [torch.randn(4, 12, 64) for _ in range(2)]
    profile = {"attn.in_proj": {"format": "bsr16x1", "sparsity": 0.5},
               "attn.out_proj": {"format": "bsr16x4-int8", "sparsity": 0.75}}
    cm = spdy.compile(model, (x,), profile=profile, calib=calib, tune=False, measure=False, progress=False)
    lowered = next(p for p in cm.passlog if p["pass"] == "lower-to-tvm")["stats"]
    assert lowered["sparse_layers"] == 2 and lowered["int8_layers"] == 1
    with torch.no_grad():   # the int8 artifact against the fake-quant model: rounding may differ by a step
        np.testing.assert_allclose(cm(x).numpy(), cm.pruned_model(x).numpy(), rtol=1e-3, atol=2e-3)
    attn = cm.pruned_model.get_submodule("attn")
    assert attn.out_proj.get_buffer("spdy_w_scale").shape == (64,)
    for w, share in ((attn.in_proj_weight, 0.5), (attn.out_proj.weight, 0.75)):
        blocks = w.detach().reshape(w.shape[0] // 16, 16, -1)
        assert float((blocks == 0).all(dim=1).float().mean()) == pytest.approx(share, abs=0.02)
