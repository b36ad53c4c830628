"""The sparsity grid of DESIGN.md 4.1 and the option list built on it."""
import numpy as np
import pytest

from spdy.passes.algo.grid import DENSE, Option, level_bp, level_index, options, sparsity_levels


def test_default_grid_matches_design():
    s = sparsity_levels()
    assert len(s) == 42
    assert s[0] == 0.0
    assert s[1] == pytest.approx(0.40) and s[-1] == pytest.approx(0.99)
    q = (0.01 / 0.6) ** (1 / 40)
    np.testing.assert_allclose(s[1:], 1 - 0.6 * q ** np.arange(41), atol=1e-12)
    assert np.all(np.diff(s) > 0)


def test_geometric_in_density():
    d = 1 - sparsity_levels(include_dense=False)
    ratios = d[1:] / d[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)


def test_configurable_grid():
    s = sparsity_levels(count=5, min_sparsity=0.5, max_sparsity=0.9, include_dense=False)
    assert len(s) == 5
    assert s[0] == pytest.approx(0.5) and s[-1] == pytest.approx(0.9)
    assert list(sparsity_levels(count=1, min_sparsity=0.5, max_sparsity=0.5)) == [0.0, 0.5]
    with pytest.raises(ValueError):
        sparsity_levels(count=0)
    with pytest.raises(ValueError):
        sparsity_levels(min_sparsity=0.9, max_sparsity=0.5)
    with pytest.raises(ValueError):
        sparsity_levels(max_sparsity=1.0)


def test_basis_points():
    assert level_bp(0.0) == 0
    assert level_bp(0.9) == 9000
    assert level_bp(0.99) == 9900
    assert level_bp(sparsity_levels()[1]) == 4000
    with pytest.raises(ValueError):
        level_bp(1.5)
    bps = [level_bp(s) for s in sparsity_levels()]
    assert len(set(bps)) == len(bps)  # keys stay distinct


def test_options_single_and_multi_format():
    opts = options()
    assert len(opts) == 42
    assert opts[0] == Option(DENSE, 0, 0.0)
    assert opts[0].key == "dense:0"
    assert opts[-1].key == "bsr16x1:9900"
    multi = options(["bsr16x1", "bsr4x1", "1x1"])
    assert len(multi) == 1 + 3 * 41  # dense listed once
    assert sum(o.format == DENSE for o in multi) == 1
    li = level_index(multi)
    assert li[0] == 0 and li.max() == 41
    assert len({o.key for o in multi}) == len(multi)
    # the same level in two formats shares the level index (the error model uses it)
    assert [o.level for o in multi if o.format == "bsr4x1"] == list(range(1, 42))


def test_options_validation():
    with pytest.raises(ValueError):
        options([])
    with pytest.raises(ValueError):
        options(["bsr16x1", "bsr16x1"])
    with pytest.raises(ValueError):
        options(["dense"])
    with pytest.raises(ValueError):
        options(["bsr16x1"], sparsities=[0.5, 0.9])
    with pytest.raises(ValueError):
        options(["bsr16x1"], sparsities=[0.0, 0.9, 0.5])
