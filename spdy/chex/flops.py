"""Multiply-accumulate count of conv and linear layers, measured with forward hooks.

The CHEX bench compares pruning methods "at the same FLOPs"; counting by running the model
once handles any topology and the spatial sizes that follow from strides.
"""
from __future__ import annotations

import torch
import torch.nn as nn


@torch.no_grad()
def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """MACs of one forward pass on `example_input` (batch included) for Conv/Linear layers."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.modules.conv._ConvNd):
            total += out.numel() * mod.weight[0].numel()
        elif isinstance(mod, nn.Linear):
            total += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
    was = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return int(total)
