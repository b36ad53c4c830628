"""Plain SGD training and evaluation on in-memory tensors.

No DataLoader: the datasets fit in memory, and indexing a tensor with a permutation from an
explicit torch.Generator keeps the batch order a function of the level's seed only, which
is what makes a resumed sweep bit-identical to an uninterrupted one.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from spdy.sweep.masks import apply_masks, mask_grads


def train(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
          *, epochs: int, lr: float, momentum: float, weight_decay: float, batch_size: int,
          gen: torch.Generator, progress: bool = False, desc: str = "train",
          on_epoch_end: Callable[[int], None] | None = None) -> None:
    """Train in place for `epochs` epochs; masks are re-applied after every step.

    on_epoch_end(e) is called after epoch e (1-based) and with e=0 before training, so the
    caller can snapshot the weights for lottery-ticket rewinding.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n = len(y)
    model.train()
    if on_epoch_end is not None:
        on_epoch_end(0)
    bar = tqdm(range(1, epochs + 1), desc=desc, leave=False, disable=not progress, unit="ep")
    for epoch in bar:
        perm = torch.randperm(n, generator=gen)
        total, steps = 0.0, 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            mask_grads(modules)
            opt.step()
            apply_masks(modules)
            total += loss.item()
            steps += 1
        bar.set_postfix(loss=f"{total / max(steps, 1):.3f}")
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, ys: list[torch.Tensor],
             batch_size: int = 4096) -> list[tuple[float, float]]:
    """(accuracy, mean cross-entropy) of the model's predictions against each label vector."""
    model.eval()
    logits = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    pred = logits.argmax(1)
    return [(float((pred == y).float().mean()), float(F.cross_entropy(logits, y))) for y in ys]


def gradient_of_loss(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor,
                     y: torch.Tensor, samples: int, gen: torch.Generator,
                     batch_size: int = 512) -> dict[str, torch.Tensor]:
    """Mean-loss gradient of each prunable weight over `samples` random training examples."""
    idx = torch.randperm(len(y), generator=gen)[:samples]
    model.zero_grad(set_to_none=True)
    for i in range(0, len(idx), batch_size):
        b = idx[i:i + batch_size]
        loss = F.cross_entropy(model(x[b]), y[b], reduction="sum") / len(idx)
        loss.backward()
    grads = {n: m.weight.grad.detach().clone() for n, m in modules.items()}
    model.zero_grad(set_to_none=True)
    return grads
