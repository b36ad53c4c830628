"""Coupling groups found by tracing: residual stages, concat offsets, depthwise, flatten->Linear."""
import torch

from spdy.chex._testmodels import MLP, CatNet, ResNet, SmallCNN, resnet18
from spdy.ir.groups import channel_groups

X = torch.randn(2, 1, 28, 28)


def _by_member(groups, qualname, kind):
    found = [g for g in groups if g.member(qualname, kind)]
    assert len(found) == 1, (qualname, kind, found)
    return found[0]


def _keys(g):
    return {(m.qualname, m.kind) for m in g.members}


def test_resnet18_stage_outputs_share_one_group():
    groups = channel_groups(resnet18(), torch.randn(1, 3, 64, 64))
    for stage, w in enumerate((64, 128, 256, 512)):
        g = _by_member(groups, f"layers.{stage}.0.conv2", "out")
        assert g.prunable and g.size == w
        assert {("layers.%d.1.conv2" % stage, "out"), ("layers.%d.0.bn2" % stage, "bn"),
                ("layers.%d.1.conv1" % stage, "in")} <= _keys(g)
        if stage > 0:
            assert (f"layers.{stage}.0.downsample.0", "out") in _keys(g)
    stem = _by_member(groups, "conv1", "out")
    assert ("layers.0.0.conv2", "out") in _keys(stem)  # stem feeds stage 1's identity adds
    inner = _by_member(groups, "layers.2.1.conv1", "out")
    assert _keys(inner) == {("layers.2.1.conv1", "out"), ("layers.2.1.bn1", "bn"), ("layers.2.1.conv2", "in")}
    assert not _by_member(groups, "fc", "out").prunable      # network output
    assert not _by_member(groups, "conv1", "in").prunable     # network input
    assert sum(g.prunable for g in groups) == 12


def test_small_residual_net():
    groups = channel_groups(ResNet(blocks=(2, 2), widths=(8, 16)), X)
    g = _by_member(groups, "layers.1.0.conv2", "out")
    assert {("layers.1.0.downsample.0", "out"), ("layers.1.1.conv2", "out"), ("fc", "in")} <= _keys(g)


def test_cat_offsets_and_depthwise():
    groups = channel_groups(CatNet(), X)
    ga, gb = _by_member(groups, "a", "out"), _by_member(groups, "b", "out")
    assert (ga.size, gb.size) == (4, 6) and ga.prunable and gb.prunable
    for q, kind in (("bn", "bn"), ("dw", "dw"), ("c", "in")):
        assert ga.member(q, kind).offset == 0
        assert gb.member(q, kind).offset == 4
    g = _by_member(groups, "g", "out")  # grouped conv refused, with a reason
    assert not g.prunable and "grouped" in g.reason
    assert not _by_member(groups, "c", "out").prunable


def test_flatten_into_linear_multiplier():
    groups = channel_groups(SmallCNN(), X)
    g = _by_member(groups, "conv2", "out")
    m = g.member("fc", "in")
    assert (m.offset, m.multiplier) == (0, 49)
    assert m.indices([1]).tolist() == list(range(49, 98))


def test_mlp_linear_chain():
    groups = channel_groups(MLP(), X)
    g0 = _by_member(groups, "layers.0", "out")
    assert _keys(g0) == {("layers.0", "out"), ("bn", "bn"), ("layers.1", "in")} and g0.size == 64
    g1 = _by_member(groups, "layers.1", "out")
    assert g1.prunable and g1.size == 32


def test_shared_module_and_unknown_op_pin():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(4, 4, 1)
            self.conv3 = torch.nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.conv2(self.conv(x))
            return self.conv3(torch.roll(y, 1, dims=1))  # roll permutes channels: not understood

    groups = channel_groups(Odd(), X)
    assert _by_member(groups, "conv", "out").prunable
    assert not _by_member(groups, "conv2", "out").prunable


def test_bottleneck_resnet50_pattern():
    from spdy.chex._testmodels import TinyBottleneckNet
    groups = channel_groups(TinyBottleneckNet(), X)
    g = _by_member(groups, "layer2.0.conv3", "out")
    assert {("layer2.0.downsample.0", "out"), ("layer2.1.conv3", "out"), ("fc", "in")} <= _keys(g)
    assert g.size == 32 and g.prunable
    stem = _by_member(groups, "stem.0", "out")  # stem output only meets layer1's downsample conv
    assert _keys(stem) == {("stem.0", "out"), ("stem.1", "bn"), ("layer1.0.conv1", "in"),
                           ("layer1.0.downsample.0", "in")}


def test_tracing_leaves_modes_and_stats_alone():
    model = SmallCNN()
    model.bn1.eval()
    before = model.bn2.running_mean.clone()
    channel_groups(model, X)
    assert model.training and not model.bn1.training and model.bn2.training
    assert torch.equal(model.bn2.running_mean, before)
    model.eval()
    channel_groups(model, X)
    assert not any(m.training for m in model.modules())
