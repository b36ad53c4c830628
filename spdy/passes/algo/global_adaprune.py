"""Global AdaPrune: a few Adam steps on all pruned layers at once, masks fixed.

Why after stitching: the reconstruction database fits each layer alone, to the *dense*
inputs of that layer; once many layers are pruned together, each sees inputs already
perturbed by the layers before it. A short joint fine-tune of the kept weights on the
calibration set, against the dense model's outputs, removes part of that accumulated error
(SPDY paper, section 5: "global AdaPrune"). Pruned weights stay zero: the masks multiply the
weights inside the graph, so their gradients are zero and Adam never moves them, and the
weights are multiplied by their masks once more at the end.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def global_adaprune(forward: Callable, params: Sequence[torch.nn.Parameter], masks: Sequence[torch.Tensor],
                    batches: Sequence, targets: Sequence[torch.Tensor], loss_fn: Callable, *,
                    steps: int = 100, lr: float = 1e-4, seed: int = 0) -> dict:
    """Tune `params` (masked by `masks`) so `forward(batch)` matches `targets`; returns losses.

    `loss_fn(output, target, batch_index) -> scalar tensor`. Batches are visited in a seeded
    random order, one Adam step each. Returns {"loss_before", "loss_after"} over all batches;
    if the tuned weights make the loss worse (too high a learning rate), they are restored.
    """
    if steps <= 0 or not params:
        return {"steps": 0}
    saved = [p.detach().clone() for p in params]
    flags = [p.requires_grad for p in params]

    def total() -> float:
        with torch.no_grad():
            return sum(float(loss_fn(forward(b), t, i)) for i, (b, t) in enumerate(zip(batches, targets))) \
                / max(1, len(batches))

    before = total()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    try:
        for _ in range(steps):
            i = int(torch.randint(len(batches), (1,), generator=gen))
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(forward(batches[i]), targets[i], i)
            loss.backward()
            opt.step()
        with torch.no_grad():
            for p, m in zip(params, masks):
                p.mul_(m.to(p.dtype))
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
            p.grad = None
    after = total()
    if not after < before:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        after_kept = before
    else:
        after_kept = after
    return {"steps": steps, "lr": lr, "loss_before": before, "loss_after": after_kept, "reverted": after >= before}
