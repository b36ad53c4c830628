"""scikit-learn's 8x8 digits (1797 images, bundled with sklearn): a dataset small enough for tests."""
from __future__ import annotations

import numpy as np
import torch


def load_digits_tensors(test_fraction: float = 0.25, seed: int = 0):
    """Return (x_train, y_train, x_test, y_test): float32 [N,1,8,8] in [0,1], int64 labels.

    The split is a fixed stratification-free permutation from `seed`, so it is reproducible
    without depending on sklearn's train_test_split defaults.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]
