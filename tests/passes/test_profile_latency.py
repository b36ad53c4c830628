import numpy as np

from spdy.passes.algo.grid import options, sparsity_levels
from spdy.passes.profile_latency import monotone_in_sparsity


def test_sparser_options_never_slower_within_a_format():
    opts = options(("bsr16x1", "bsr4x1"), sparsity_levels(4))
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 10, size=(3, len(opts)))
    m = monotone_in_sparsity(t, opts)
    assert np.array_equal(m[:, 0], t[:, 0])  # dense untouched
    for fmt in ("bsr16x1", "bsr4x1"):
        idx = [j for j, o in sorted(enumerate(opts), key=lambda p: p[1].sparsity) if o.format == fmt]
        assert (np.diff(m[:, idx], axis=1) <= 0).all()
        assert (m[:, idx] <= t[:, idx]).all()
        assert np.array_equal(m[:, idx[0]], t[:, idx[0]])  # the least sparse level keeps its time
