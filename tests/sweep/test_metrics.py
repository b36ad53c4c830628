"""Learning distance counts kept weights only; sparsity counts prunable weights."""
import math

import torch

from spdy.sweep.metrics import learning_distance, sparsity


def test_learning_distance_ignores_pruned_weights():
    start = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    learned = {"a": torch.tensor([1.0, 5.0, 100.0, 0.0])}  # pruned entries differ wildly
    masks = {"a": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    assert learning_distance(start, learned, masks) == 3.0


def test_learning_distance_sums_layers():
    start = {"a": torch.zeros(2), "b": torch.zeros(3)}
    learned = {"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([0.0, 4.0, 9.0])}
    masks = {"a": torch.ones(2), "b": torch.tensor([1.0, 1.0, 0.0])}
    assert math.isclose(learning_distance(start, learned, masks), 5.0)


def test_sparsity_over_prunable():
    masks = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.0, 0.0, 1.0, 1.0])}
    assert sparsity(masks) == (0.5, 3, 6)


def test_summary_four_phases():
    from spdy.sweep.summary import summarize

    accs = [0.90, 0.88, 0.85, 0.93, 0.97, 0.80]
    levels = [{"test_acc": a, "sparsity": i / 10} for i, a in enumerate(accs)]
    s = summarize(levels)
    assert s["peak"]["level"] == 4 and s["dip"]["level"] == 2 and s["four_phases_seen"]
    flat = [{"test_acc": 0.9, "sparsity": i / 10} for i in range(4)]
    assert not summarize(flat)["four_phases_seen"]
