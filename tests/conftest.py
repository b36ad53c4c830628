"""Shared fixtures: tiny models, and per-session caches in a temporary directory."""
from __future__ import annotations

import os

import pytest
import torch

# Caches written by tests go to a per-session temp dir, never the user's ~/.cache.
_CACHE = None


def pytest_configure(config):
    global _CACHE
    import tempfile
    _CACHE = tempfile.mkdtemp(prefix="spdy-test-cache-")
    os.environ.setdefault("SPDY_CACHE_DIR", _CACHE)
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    torch.set_num_threads(2)
    # transformers imports torchvision when it is installed; torchvision's C ops do not load
    # against the CPU torch (spdy/models/torchvision_import.py)
    from spdy.models.torchvision_import import make_torchvision_importable
    make_torchvision_importable()


class ConvBNNet(torch.nn.Module):
    """Covers conv variants, BN after conv and standalone, residual, pooling, linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = torch.nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=2)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.strided = torch.nn.Conv2d(8, 12, 5, stride=2, padding=2)
        self.bn_alone = torch.nn.BatchNorm2d(12)
        self.fc = torch.nn.Linear(12, 5)
        g = torch.Generator().manual_seed(1)
        for bn in (self.bn1, self.bn2, self.bn_alone):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.2)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.dw(x)
        x = torch.relu(self.bn2(self.grouped(y)) + x)
        x = self.bn_alone(torch.relu(self.strided(x)) * 1.0)
        return self.fc(x.mean((2, 3)))


@pytest.fixture
def convnet():
    torch.manual_seed(0)
    return ConvBNNet().eval()


@pytest.fixture
def image():
    return torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
