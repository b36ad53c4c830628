"""Datasets a sweep can train on, as in-memory tensors, plus their shapes for early checks."""
from __future__ import annotations

from dataclasses import dataclass

import torch

SHAPES = {"mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor  # true labels
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


def load_dataset(name: str, train_subset: int = 0) -> Data:
    if name == "mnist":
        from spdy.data import load_mnist
        xtr, ytr = load_mnist("train")
        xte, yte = load_mnist("test")
        # The official code normalises MNIST with mean 0.1307, std 0.3081.
        xtr, xte = (xtr - 0.1307) / 0.3081, (xte - 0.1307) / 0.3081
    elif name == "digits":
        from spdy.data import load_digits_tensors
        xtr, ytr, xte, yte = load_digits_tensors()
    else:
        raise ValueError(name)
    if train_subset:
        xtr, ytr = xtr[:train_subset], ytr[:train_subset]
    return Data(xtr.contiguous(), ytr, xte.contiguous(), yte, SHAPES[name][1])
