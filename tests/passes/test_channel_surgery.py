"""Channel surgery: exact when nothing is pruned, expected shapes when pruned, replayable."""
import json

import pytest
import torch

from spdy.chex import ChannelSurgeryError, channel_groups, prune_channels, replay
from spdy.chex._testmodels import MLP, CatNet, ResNet, SmallCNN, TinyBottleneckNet

X = torch.randn(3, 1, 28, 28)
MODELS = [SmallCNN, MLP, CatNet, TinyBottleneckNet, lambda: ResNet(blocks=(2, 2), widths=(8, 16))]


def _randomize_bn(model):
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("make", MODELS)
def test_keep_all_is_exact(make):
    torch.manual_seed(0)
    model = _randomize_bn(make())
    groups = channel_groups(model, X)
    keep = {g.id: list(range(g.size)) for g in groups if g.prunable}
    small, history = prune_channels(model, keep, groups=groups)
    assert history == []
    assert torch.equal(small(X), model(X))


@pytest.mark.parametrize("make", MODELS)
def test_prune_half_runs_and_shrinks(make):
    torch.manual_seed(0)
    model = _randomize_bn(make())
    groups = channel_groups(model, X)
    keep = {g.id: list(range(0, g.size, 2)) for g in groups if g.prunable}
    small, history = prune_channels(model, keep, X)
    assert small(X).shape == model(X).shape
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(small) < n(model)
    # the pruned model equals the masked model: zero the dropped channels' producers
    masked = _mask_like(model, groups, keep)
    torch.testing.assert_close(small(X), masked(X), atol=1e-5, rtol=1e-5)


def _mask_like(model, groups, keep):
    import copy
    m = copy.deepcopy(model)
    mods = dict(m.named_modules())
    with torch.no_grad():
        for g in groups:
            if g.id not in keep:
                continue
            drop = sorted(set(range(g.size)) - set(keep[g.id]))
            for mem in g.members:
                if mem.kind == "in":
                    mods[mem.qualname].weight[:, mem.indices(drop)] = 0
                elif mem.kind in ("out", "dw", "bn"):
                    mods[mem.qualname].weight[mem.indices(drop)] = 0
                    if mods[mem.qualname].bias is not None:
                        mods[mem.qualname].bias[mem.indices(drop)] = 0
    return m


def test_exact_shapes_resnet():
    model = ResNet(blocks=(2, 2), widths=(8, 16)).eval()
    small, _ = prune_channels(model, {"conv1": [0, 1, 2], "layers.1.0.conv1": [3, 4, 5, 6, 7],
                                      "layers.1.0.conv2": list(range(10))}, X)
    assert small.conv1.weight.shape == (3, 1, 3, 3)
    assert small.bn1.running_var.shape == (3,)
    assert small.layers[0][1].conv2.weight.shape == (3, 8, 3, 3)
    assert small.layers[1][0].conv1.weight.shape == (5, 3, 3, 3)
    assert small.layers[1][0].downsample[0].weight.shape == (10, 3, 1, 1)
    assert small.layers[1][0].conv2.weight.shape == (10, 5, 3, 3)
    assert small.fc.weight.shape == (10, 10)
    assert small(X).shape == (3, 10)


def test_flatten_linear_and_depthwise_shapes():
    small, hist = prune_channels(SmallCNN().eval(), {"conv2": [1, 5, 7]}, X)
    assert small.fc.weight.shape == (10, 3 * 49)
    assert ["fc", 1, list(range(49, 98)) + list(range(245, 294)) + list(range(343, 392))] in hist
    cat, _ = prune_channels(CatNet().eval(), {"a": [0, 3], "b": [1, 2, 5]}, X)
    assert cat.dw.weight.shape == (5, 1, 3, 3) and cat.dw.groups == 5
    assert cat.c.weight.shape == (8, 5, 1, 1)
    assert cat(X).shape == (3, 10)


def test_history_replay_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = _randomize_bn(ResNet(blocks=(2, 2), widths=(8, 16)))
    small, history = prune_channels(model, {"conv1": [1, 4, 6], "layers.0.0.conv1": [0, 7]}, X)
    path = tmp_path / "history.json"
    path.write_text(json.dumps(history))
    again = replay(model, path)
    assert torch.equal(again(X), small(X))


def test_clear_errors_name_the_group():
    model = SmallCNN()
    with pytest.raises(ChannelSurgeryError, match="conv1"):
        prune_channels(model, {"conv1": []}, X)
    with pytest.raises(ChannelSurgeryError, match="not prunable"):
        prune_channels(model, {"fc": [0, 1]}, X)
    with pytest.raises(ChannelSurgeryError, match=r"\[0, 8\)"):
        prune_channels(model, {"conv1": [0, 8]}, X)
    with pytest.raises(ChannelSurgeryError, match="example_inputs"):
        prune_channels(model, {"conv1": [0]})
