"""Models a sweep can build by name, and the list of their prunable weights.

Prunable = the weight of every nn.Linear / nn.Conv2d whose module name is not excluded;
biases and norms stay dense, as in the paper.
"""
from __future__ import annotations

import torch
from torch import nn

from spdy.sweep.config import SweepConfigError


class MLP(nn.Module):
    """Fully connected ReLU net; the last layer is named `fc` like the official LeNet code."""

    def __init__(self, in_features: int, hidden: list[int], classes: int):
        super().__init__()
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.fc = nn.Linear(sizes[-1], classes)

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.fc(x)


class TinyCNN(nn.Module):
    """Two 3x3 convs and a linear head: exercises Conv2d pruning in tests."""

    def __init__(self, in_ch: int, side: int, classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16 * ((side + 1) // 2) ** 2, classes)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def _init(model: nn.Module) -> None:
    """Kaiming-normal weights and zero biases (the official LeNet init)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build_model(spec: str, in_shape: tuple[int, int, int], classes: int, seed: int) -> nn.Module:
    """Build and initialise the model named by `spec` deterministically from `seed`."""
    c, h, w = in_shape
    if spec == "lenet300":
        hidden = [300, 100]
    elif spec.startswith("mlp:"):
        body = spec[4:].strip()
        try:
            hidden = [int(s) for s in body.split(",")] if body else []
        except ValueError:
            raise SweepConfigError(f"bad model spec {spec!r}: expected mlp:H1,H2,...") from None
        if any(s <= 0 for s in hidden):
            raise SweepConfigError(f"bad model spec {spec!r}: hidden sizes must be positive")
    elif spec == "cnn-tiny":
        hidden = None
    else:
        raise SweepConfigError(f"unknown model {spec!r}; use lenet300, mlp:H1,H2,... or cnn-tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(c * h * w, hidden, classes) if hidden is not None else TinyCNN(c, h, classes)
        _init(model)
    return model


def prunable_modules(model: nn.Module, exclude: tuple[str, ...] = ()) -> dict[str, nn.Module]:
    """Name -> Linear/Conv2d module whose weight is pruned, in definition order."""
    found = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    missing = [e for e in exclude if e not in found]
    if missing:
        raise SweepConfigError(
            f"exclude names {missing} match no Linear/Conv2d layer; layers are {list(found)}"
        )
    out = {n: m for n, m in found.items() if n not in exclude}
    if not out:
        raise SweepConfigError(
            "the model has nothing to prune: no Linear/Conv2d weight is left after exclusions"
        )
    return out
