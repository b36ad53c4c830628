"""CHEX training loop on sklearn digits: runs, ends at the asked channel sparsity, MRU works."""
import json

import pytest
import torch
import torch.nn.functional as F

from spdy.chex import ChannelSurgeryError, channel_groups, replay, train
from spdy.chex._testmodels import ResNet
from spdy.chex.explore import regrow_factor
from spdy.chex.masks import GroupMasks


def _digits_loader(n=512, batch=64):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images[:n], dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=28)  # the test models expect 1x28x28
    y = torch.tensor(d.target[:n])
    ds = torch.utils.data.TensorDataset(x, y)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))


def test_train_reaches_sparsity_and_logs(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = ResNet(blocks=(1, 1), widths=(16, 32))
    loader = _digits_loader()
    log_path = tmp_path / "log.json"
    res = train(model, loader, channel_sparsity=0.5, epochs=2, delta0=0.3, delta_t_epochs=0.25,
                t_max_epochs=1.5, lr=0.05, log_path=log_path, progress=False)
    assert abs(res.channel_sparsity - 0.5) < 0.1
    log = json.loads(log_path.read_text())
    assert len(log["steps"]) >= 4 and log["steps"][0]["delta"] == pytest.approx(0.3)
    assert log["steps"][-1]["delta"] == pytest.approx(0.0)
    assert sum(log["steps"][0]["regrown"].values()) > 0
    small = res.model.eval()
    model.eval()
    x = next(iter(loader))[0]
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(small) < 0.6 * n(model)
    torch.testing.assert_close(small(x), model(x), atol=1e-4, rtol=1e-4)  # masked == pruned
    torch.testing.assert_close(replay(model, res.history)(x), small(x))
    acc = (small(x).argmax(1) == next(iter(loader))[1]).float().mean()  # noqa: F841 (smoke)


def test_mru_restore_and_masking():
    torch.manual_seed(0)
    model = ResNet(blocks=(1,), widths=(8,))
    groups = channel_groups(model, torch.randn(1, 1, 28, 28))
    masks = GroupMasks(model, groups)
    g = next(g for g in masks.groups if g.member("layers.0.0.conv1", "out"))
    conv1, conv2 = model.layers[0][0].conv1, model.layers[0][0].conv2
    before_out, before_in = conv1.weight[2].clone(), conv2.weight[:, 2].clone()
    bn_mean = model.layers[0][0].bn1.running_mean
    bn_mean.fill_(0.25)
    masks.snapshot()
    masks.set_active(g.id, torch.tensor([0, 1, 3, 4, 5, 6, 7]))
    masks.apply()
    assert conv1.weight[2].abs().sum() == 0 and conv2.weight[:, 2].abs().sum() == 0
    assert model.layers[0][0].bn1.weight[2] == 0
    bn_mean.fill_(0.0)  # stats drift while masked
    with torch.no_grad():
        conv1.weight[0] += 1.0  # active channels keep training
    masks.restore_inactive()
    assert torch.equal(conv1.weight[2], before_out) and torch.equal(conv2.weight[:, 2], before_in)
    assert bn_mean[2] == 0.25 and bn_mean[0] == 0.0  # only inactive channels restored


def test_schedule_and_errors():
    assert regrow_factor(0, 4, 0.3) == pytest.approx(0.3)
    assert regrow_factor(2, 4, 0.3) == pytest.approx(0.15)
    assert regrow_factor(4, 4, 0.3) == pytest.approx(0.0)
    with pytest.raises(ChannelSurgeryError, match="channel_sparsity"):
        train(ResNet(), _digits_loader(64), channel_sparsity=1.0, epochs=1, progress=False)
