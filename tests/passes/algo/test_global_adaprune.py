import torch

from spdy.passes.algo.global_adaprune import global_adaprune


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    dense = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    for p in dense.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3
    batches = [torch.randn(64, 16, generator=g) for _ in range(4)]
    with torch.no_grad():
        targets = [dense(b) for b in batches]
    masks = [(torch.rand(m.weight.shape, generator=g) > 0.6).float() for m in (dense[0], dense[2])]
    pruned = [dense[0].weight, dense[2].weight]
    with torch.no_grad():
        for w, m in zip(pruned, masks):
            w.mul_(m)

    def forward(b):  # masks applied inside the forward, as the masked graph does
        h = torch.relu(torch.nn.functional.linear(b, dense[0].weight * masks[0], dense[0].bias))
        return torch.nn.functional.linear(h, dense[2].weight * masks[1], dense[2].bias)
    return forward, pruned, masks, batches, targets


def mse(out, target, i):
    return ((out - target) ** 2).mean()


def test_joint_tuning_lowers_the_loss_and_keeps_pruned_weights_zero():
    forward, params, masks, batches, targets = _setup()
    stats = global_adaprune(forward, params, masks, batches, targets, mse, steps=60, lr=1e-2)
    assert stats["loss_after"] < 0.8 * stats["loss_before"] and not stats["reverted"]
    for w, m in zip(params, masks):
        assert (w[m == 0] == 0).all()
        assert w.requires_grad and w.grad is None  # flags as they were (nn.Linear: True)


def test_a_step_that_makes_things_worse_is_reverted():
    forward, params, masks, batches, targets = _setup()
    before = [p.detach().clone() for p in params]
    stats = global_adaprune(forward, params, masks, batches, targets, mse, steps=5, lr=50.0)
    assert stats["reverted"] and stats["loss_after"] == stats["loss_before"]
    for w, b in zip(params, before):
        assert torch.equal(w, b)


def test_zero_steps_is_a_no_op():
    forward, params, masks, batches, targets = _setup()
    assert global_adaprune(forward, params, masks, batches, targets, mse, steps=0) == {"steps": 0}
