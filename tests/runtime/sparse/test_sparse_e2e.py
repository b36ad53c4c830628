"""spdy.compile with a given profile routes the marked layers to the sparse emitters."""
import collections

import numpy as np
import torch


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.b1 = torch.nn.BatchNorm2d(16)
        self.c2 = torch.nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.c3 = torch.nn.Conv2d(32, 32, 1)
        self.fc = torch.nn.Linear(32 * 8 * 8, 20)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        y = torch.relu(self.c2(x))
        y = torch.relu(self.c3(y) + y)
        return self.fc(y.flatten(1))


def test_profile_compile_uses_sparse_kernels(monkeypatch):
    import spdy
    import spdy.runtime.sparse as S
    calls = collections.Counter()
    for name in ("emit_sparse_conv2d", "emit_sparse_linear"):
        orig = getattr(S, name)

        def wrap(*a, _f=orig, **k):
            calls[(k["name"], k["spec"]["format"])] += 1
            return _f(*a, **k)
        monkeypatch.setattr(S, name, wrap)
    torch.manual_seed(0)
    m = _Net().eval()
    x = torch.randn(1, 3, 16, 16)
    prof = {"c2": {"format": "bsr16x1", "sparsity": 0.9}, "c3": {"format": "bsr4x1", "sparsity": 0.5},
            "fc": {"format": "bsr1x1", "sparsity": 0.8}}
    try:
        from ._sparse_util import target
    except ImportError:
        from ._sparse_util import target
    cm = spdy.compile(m, (x,), target=target(), profile=prof, tune=False, measure=False)
    assert calls == {("c2", "bsr16x1"): 1, ("c3", "bsr4x1"): 1, ("fc", "bsr1x1"): 1}
    y = cm(x)
    ref = cm.pruned_model(x).detach().numpy()
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-4, atol=1e-4)
