import numpy as np
import pytest

from spdy.passes.algo.grid import sparsity_levels
from spdy.passes.algo.latency_fit import anchor_indices, interpolate_in_density, upward_outliers


def test_anchor_indices_cover_both_ends():
    assert anchor_indices(41, 4) == list(range(0, 41, 4))
    assert anchor_indices(10, 4) == [0, 4, 8, 9]
    assert anchor_indices(5, 1) == [0, 1, 2, 3, 4]
    assert anchor_indices(1, 4) == [0]
    assert anchor_indices(0, 4) == []


def test_interpolation_is_exact_for_a_kernel_linear_in_density():
    s = sparsity_levels(41, include_dense=False)
    true = 0.02 + 1.5 * (1 - s)          # fixed overhead + work proportional to nonzeros
    idx = anchor_indices(len(s), 4)
    est = interpolate_in_density(s, idx, true[idx])
    np.testing.assert_allclose(est, true, rtol=1e-12)
    assert np.array_equal(est[idx], true[idx])  # timed levels keep their measurement


def test_interpolation_never_extrapolates():
    s = np.array([0.4, 0.5, 0.6, 0.9, 0.99])
    est = interpolate_in_density(s, [1, 3], [2.0, 1.0])
    assert est[0] == 2.0 and est[-1] == 1.0  # nearest anchor outside the timed range
    with pytest.raises(ValueError):
        interpolate_in_density(s, [1, 3], [2.0])


def test_upward_outliers_flags_load_bursts_only():
    s = np.linspace(0.4, 0.99, 8)
    t = 1.0 - 0.9 * s
    assert upward_outliers(s, t) == []
    burst = t.copy()
    burst[3] *= 2.0                      # a load burst: slower than its neighbours explain
    assert upward_outliers(s, burst) == [3]
    fast = t.copy()
    fast[3] *= 0.5                       # faster than expected is not flagged (load never speeds up)
    assert 3 not in upward_outliers(s, fast)  # (its neighbours may be re-timed: harmless, min is kept)
    end = t.copy()
    end[-1] = end[-2] * 1.5              # the sparsest level slower than its denser neighbour
    assert upward_outliers(s, end) == [len(s) - 1]
