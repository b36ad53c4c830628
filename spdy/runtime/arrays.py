"""Arrays at the runtime's door: users call artifacts with numpy or torch, TVM takes numpy.
Kept free of torch imports so a deployed artifact loads without torch."""
from __future__ import annotations

import numpy as np


def is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def to_numpy(v) -> np.ndarray:
    return v.detach().cpu().numpy() if is_torch(v) else np.asarray(v)
