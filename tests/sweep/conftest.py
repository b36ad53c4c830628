"""Shared fixtures: a very small sweep config so every test trains in well under a second."""
import pytest
import torch

from spdy.sweep import SweepConfig


@pytest.fixture(autouse=True)
def _one_thread():
    # Bit-identical resume checks and CPU sharing both want a fixed thread count.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def small_cfg() -> SweepConfig:
    return SweepConfig(model="mlp:32", dataset="digits", noise="symmetric", noise_rate=0.2,
                       criterion="magnitude-global", retrain="rewind", rewind_epoch=1,
                       levels=3, epochs_dense=2, epochs_per_level=2, lr=0.1, batch_size=64,
                       seed=3)
