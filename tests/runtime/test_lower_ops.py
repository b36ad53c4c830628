"""Ops the importer has no converter for (or converts wrongly) compile dense and match PyTorch:
in-place writes into views, ops torch decomposes, sdpa with a bool mask and a scale, a cast
TVM drops; a truly unsupported op still gets one line naming it."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import spdy
from spdy.errors import UnsupportedOpError


class _Base(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)


class FillInPlace(_Base):   # Swin's attention mask: fill_ with a tensor value into slices
    def forward(self, x):
        m = torch.zeros(x.shape[0], 8)
        m[:, :3].fill_(torch.tensor(2.0))
        m[:, 5:].fill_(-1.0)      # fill_.Scalar: TVM names it, but would not write through the view
        return self.fc(x) * m


class SwapAxes(_Base):      # MaxViT
    def forward(self, x):
        return torch.swapaxes(self.fc(x).reshape(x.shape[0], 2, 4), 1, 2) * 2.0


class Lerp(_Base):          # lerp: no converter, core ATen decomposition
    def forward(self, x):
        y = self.fc(x)
        return torch.lerp(y, torch.tanh(y), 0.3)


class BoolMaskAttention(_Base):   # Hugging Face sdpa: bool mask built with new_ones(dtype=bool)
    def forward(self, x, mask):
        q = self.fc(x).view(x.shape[0], 4, 2, 4).transpose(1, 2)
        keep = mask.new_ones([], dtype=torch.bool) & mask.bool()[:, None, None, :]
        return F.scaled_dot_product_attention(q, q, q, keep.expand(-1, 1, 4, 4), scale=0.3)


class CausalAttention(_Base):     # decoder-style: is_causal, float mask, default scale
    def forward(self, x):
        q = self.fc(x).view(x.shape[0], 4, 2, 4).transpose(1, 2)
        bias = torch.linspace(-1.0, 1.0, 4).expand(4, 4)
        return F.scaled_dot_product_attention(q, q * 0.5, q, bias) + F.scaled_dot_product_attention(q, q, q, is_causal=True)


def _inputs(name):
    x = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    if name == "CausalAttention":
        return (torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(0)),)
    if name == "BoolMaskAttention":
        return (torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]))
    return (x,)


@pytest.mark.parametrize("cls", [FillInPlace, SwapAxes, Lerp, BoolMaskAttention, CausalAttention], ids=lambda c: c.__name__)
def test_compiles_dense_and_matches_torch(cls):
    torch.manual_seed(0)
    model, inputs = cls().eval(), _inputs(cls.__name__)
    cm = spdy.compile(model, inputs, tune=False, measure=False)
    np.testing.assert_allclose(cm(*inputs).numpy(), model(*inputs).detach().numpy(), atol=1e-5, rtol=0)


def test_an_op_without_converter_or_decomposition_is_named_in_one_line():
    class Bucketed(_Base):
        def forward(self, x):
            return self.fc(x) + torch.searchsorted(torch.tensor([-1.0, 0.0, 1.0]), x)

    with pytest.raises(UnsupportedOpError) as e:
        spdy.compile(Bucketed().eval(), (torch.randn(2, 8),), tune=False, measure=False)
    msg = str(e.value)
    assert "1 unsupported op(s)" in msg and "searchsorted.Tensor" in msg and "\n" not in msg.split(" [in pass")[0]
