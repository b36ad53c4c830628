"""CHEX training (Hou et al., CVPR'22, Algorithm 1): train from scratch while periodically
pruning and regrowing channels, then cut the model down to a smaller dense one.

Schedule (in iterations, converted from the epoch arguments): an explore step every
dT = delta_t_epochs epochs while t <= T_max = t_max_epochs; step s regrows
delta_s = 0.5 * (1 + cos(pi * s / N)) * delta0 of each group, N = T_max / dT, so the last
step (s = N) regrows nothing and leaves exactly the target widths. If training ends before
that step ran, it runs once more at the end. Masks are re-applied after every optimizer
step. Step 0 allocates uniformly; later steps re-allocate by BN |gamma| (explore.py).

Official recipe details kept: no weight decay on BN parameters and biases; optional BN gamma
initialisation (official 0.5) via `bn_gamma_init`, off by default so a caller's init stands.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from spdy.chex.explore import explore_step, regrow_factor
from spdy.chex.importance import get_importance
from spdy.chex.masks import GroupMasks
from spdy.ir.groups import ChannelGroup, channel_groups
from spdy.passes.algo.surgery import ChannelSurgeryError, History, apply_history, history_from_keep


@dataclass
class ChexResult:
    model: nn.Module                 # the smaller dense model (after surgery)
    history: History                 # replayable [qualname, dim, kept] entries
    log: dict                        # config, per-step channel counts, per-epoch loss
    groups: list[ChannelGroup] = field(default_factory=list)
    channel_sparsity: float = 0.0    # achieved, over the prunable groups


def _optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            is_norm = isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm))
            (no_decay if is_norm or name == "bias" else decay).append(p)
    return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=lr, momentum=momentum, nesterov=momentum > 0)


def _check(channel_sparsity: float, delta0: float) -> None:
    if not 0.0 <= channel_sparsity < 1.0:
        raise ChannelSurgeryError(f"channel_sparsity must lie in [0, 1), got {channel_sparsity}")
    if not 0.0 <= delta0 < 1.0:
        raise ChannelSurgeryError(f"delta0 must lie in [0, 1), got {delta0}")


def train(model: nn.Module, train_loader: Iterable, channel_sparsity: float = 0.5, epochs: int = 10,
          delta0: float = 0.3, delta_t_epochs: float = 2.0, t_max_epochs: float | None = None, *,
          lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 5e-4,
          importance: str | Callable = "css", loss_fn: Callable = F.cross_entropy,
          bn_gamma_init: float | None = None, min_keep_ratio: float = 0.05, seed: int = 0,
          example_inputs: Any = None, log_path: str | Path | None = None,
          progress: bool = True) -> ChexResult:
    """Train `model` (in place) with CHEX and return the pruned dense model and its history.

    `t_max_epochs` defaults to 72% of `epochs` (official: 180 of 250). Fractional epoch
    arguments are allowed for short runs. The loader yields (inputs, targets) batches.
    """
    _check(channel_sparsity, delta0)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    crit = get_importance(importance, seed)
    batches_per_epoch = len(train_loader)
    if example_inputs is None:
        example_inputs = next(iter(train_loader))[0][:2]
    groups = channel_groups(model, example_inputs)
    masks = GroupMasks(model, groups)
    if not masks.groups:
        raise ChannelSurgeryError("the model has no prunable channel group")
    if bn_gamma_init is not None:
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.weight is not None:
                nn.init.constant_(mod.weight, bn_gamma_init)

    total = max(1, epochs * batches_per_epoch)
    t_max_epochs = 0.72 * epochs if t_max_epochs is None else t_max_epochs
    d_t = max(1, round(delta_t_epochs * batches_per_epoch))
    n_steps = max(1, int(round(t_max_epochs * batches_per_epoch)) // d_t)
    opt = _optimizer(model, lr, momentum, weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / total)))
    log = {"config": {"channel_sparsity": channel_sparsity, "epochs": epochs, "delta0": delta0,
                      "delta_t_iters": d_t, "t_max_iters": n_steps * d_t, "n_steps": n_steps,
                      "lr": lr, "importance": importance if isinstance(importance, str) else "custom",
                      "seed": seed},
           "groups": [g.to_json() for g in masks.groups], "steps": [], "epochs": []}

    def step(s: int, t: int) -> None:
        delta = regrow_factor(s, n_steps, delta0)
        info = explore_step(model, masks, crit, channel_sparsity, delta, uniform=(s == 0), gen=gen,
                            min_keep_ratio=min_keep_ratio)
        log["steps"].append({"iter": t, "epoch": t / batches_per_epoch, "step": s, "delta": delta, **info})

    bar = _progress(total, progress)
    last_step, t = -1, 0
    model.train()
    for epoch in range(epochs):
        loss_sum, seen = 0.0, 0
        for x, y in train_loader:
            if t % d_t == 0 and t // d_t <= n_steps:
                last_step = t // d_t
                step(last_step, t)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            masks.apply()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            t += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", active=sum(masks.counts().values()))
        log["epochs"].append({"epoch": epoch, "loss": loss_sum / max(seen, 1)})
        _write(log, log_path)
    if bar is not None:
        bar.close()
    if last_step < n_steps:  # training ended before the final (no-regrowth) step
        step(n_steps, t)
    history = history_from_keep(model, groups, masks.kept())
    small = apply_history(model, history)
    size = sum(g.size for g in masks.groups)
    achieved = 1.0 - sum(masks.counts().values()) / size
    counts = masks.counts()
    log["final"] = {"channel_sparsity": achieved,
                    "channels": {g.name: counts[g.id] for g in masks.groups},
                    "layer_channels": {m.qualname: counts[g.id] for g in masks.groups
                                       for m in g.members if m.kind in ("out", "dw")}}
    _write(log, log_path)
    return ChexResult(small, history, log, groups, achieved)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="chex", unit="it")


def _write(log: dict, path: str | Path | None) -> None:
    if path is not None:
        Path(path).write_text(json.dumps(log, indent=1))
