"""Pruning removes exactly round(fraction * kept) weights per level and never revives one."""
import pytest
import torch

from spdy.sweep import masks as M
from spdy.sweep.models import build_model, prunable_modules


def _setup(spec="mlp:40,20", shape=(1, 8, 8), exclude=()):
    model = build_model(spec, shape, 10, seed=0)
    mods = prunable_modules(model, exclude)
    M.attach_masks(mods)
    return model, mods


def _kept(mods):
    return sum(int(M.get_masks(mods)[n].sum()) for n in mods)


@pytest.mark.parametrize("criterion", ["magnitude-global", "gradient", "random"])
def test_global_fraction_exact_and_monotone(criterion):
    model, mods = _setup()
    gen = torch.Generator().manual_seed(0)
    total = sum(m.weight.numel() for m in mods.values())
    kept = total
    prev = {n: m.clone() for n, m in M.get_masks(mods).items()}
    for level in range(12):
        grads = {n: torch.randn(m.weight.shape, generator=gen) for n, m in mods.items()}
        scores = M.scores_for(criterion, mods, grads, gen)
        removed = M.prune_step(mods, scores, 0.2, per_layer=False)
        expect = round(0.2 * kept)
        assert sum(removed.values()) == expect
        kept -= expect
        assert _kept(mods) == kept
        for n, m in M.get_masks(mods).items():
            assert torch.all(m <= prev[n]), "a pruned weight came back"
            assert torch.all(mods[n].weight[m == 0] == 0)
            prev[n] = m.clone()


def test_layerwise_fraction_exact_per_layer():
    model, mods = _setup()
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        before = {n: int(m.sum()) for n, m in M.get_masks(mods).items()}
        removed = M.prune_step(mods, M.scores_for("magnitude-layer", mods, None, gen), 0.2, True)
        for n, m in M.get_masks(mods).items():
            assert removed[n] == round(0.2 * before[n])
            assert int(m.sum()) == before[n] - removed[n]


def test_magnitude_removes_smallest_kept():
    model, mods = _setup("mlp:4", shape=(1, 2, 2))
    w = mods["hidden.0"].weight
    with torch.no_grad():
        w.copy_(torch.arange(1, 17, dtype=torch.float32).view(4, 4))
        mods["fc"].weight.fill_(100.0)
    M.prune_step(mods, M.scores_for("magnitude-global", mods, None, None), 0.2, False)
    k = round(0.2 * (16 + 40))
    assert torch.equal(M.get_masks(mods)["hidden.0"].flatten()[:k], torch.zeros(k))
    assert int(M.get_masks(mods)["hidden.0"].sum()) == 16 - k


def test_conv_and_exclusions():
    model, mods = _setup("cnn-tiny", exclude=("fc",))
    assert set(mods) == {"conv1", "conv2"}
    M.prune_step(mods, M.scores_for("magnitude-global", mods, None, None), 0.5, False)
    total = sum(m.weight.numel() for m in mods.values())
    assert _kept(mods) == total - round(0.5 * total)
    assert int(model.fc.weight.eq(0).sum()) == 0  # excluded layer untouched
