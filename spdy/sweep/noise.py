"""Label noise on the training set (the test set always stays clean).

Counts are exact rather than sampled: in every affected class exactly round(rate * n_c)
labels change, so "20% noise" means 20% on every run, and a test can check it. The
choice of which examples flip and (for symmetric noise) their new class comes from a
generator seeded by `seed` alone, so the noisy labels are a pure function of (labels, type,
rate, seed); they are also saved next to the results.

Types (K classes):
  symmetric  - the new label is uniform over the K-1 other classes.
  pairflip   - c -> (c + 1) mod K.
  asymmetric - the MNIST mapping of the official sparse-double-descent code (after CDR,
               Xia et al.): 2 -> 7, 3 -> 8, 5 -> 6, 6 -> 5; other classes are untouched,
               so the overall rate is lower than `rate`.
"""
from __future__ import annotations

import numpy as np
import torch

ASYMMETRIC_MNIST = {2: 7, 3: 8, 5: 6, 6: 5}


def _target(kind: str, c: int, k: int, rng: np.random.Generator, n: int) -> np.ndarray:
    if kind == "symmetric":
        offs = rng.integers(1, k, size=n)  # 1..K-1, never the true class
        return (c + offs) % k
    if kind == "pairflip":
        return np.full(n, (c + 1) % k)
    if kind == "asymmetric":
        return np.full(n, ASYMMETRIC_MNIST[c])
    raise ValueError(f"unknown noise type {kind!r}")


def add_label_noise(labels: torch.Tensor, kind: str, rate: float, num_classes: int,
                    seed: int) -> torch.Tensor:
    """Return a noisy copy of `labels` (int64); `labels` itself is not modified."""
    y = labels.cpu().numpy().astype(np.int64)
    out = y.copy()
    if kind == "none" or rate == 0.0:
        return torch.from_numpy(out)
    if kind == "asymmetric" and num_classes != 10:
        raise ValueError("asymmetric noise uses the MNIST digit mapping and needs 10 classes")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6E6F6973]))  # "nois"
    classes = sorted(ASYMMETRIC_MNIST) if kind == "asymmetric" else range(num_classes)
    for c in classes:
        idx = np.flatnonzero(y == c)
        n_flip = int(round(rate * len(idx)))
        chosen = rng.permutation(idx)[:n_flip]
        out[chosen] = _target(kind, c, num_classes, rng, n_flip)
    return torch.from_numpy(out)
