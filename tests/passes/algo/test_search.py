"""SPDY Algorithm 4 (search over sensitivities) and the uniform / GMP baselines."""
import math

import numpy as np
import pytest
import torch

from spdy.errors import InfeasibleSpeedupError
from spdy.passes.algo.dp import solve_dp
from spdy.passes.algo.grid import level_index, options, sparsity_levels
from spdy.passes.algo.search import SearchResult, best_of, error_table, gmp_profile, search, uniform_profile

L, S = 10, 12


def problem(seed=0):
    """Times falling with level; a hidden 'true' loss with uneven layer sensitivities."""
    rng = np.random.default_rng(seed)
    dens = 1 - sparsity_levels(count=S - 1)
    dense_t = rng.uniform(1, 3, L)
    T = dense_t[:, None] * (0.1 + 0.9 * dens[None, :])
    sens = rng.uniform(0, 1, L) ** 3

    def loss(choice):
        lv = np.asarray(choice, dtype=float) / (S - 1)
        return float((sens * lv ** 2).sum() + 0.3 * (sens * lv ** 4).sum())

    budget = 0.5 * dense_t.sum()
    return T, loss, budget, sens


def test_error_table():
    lv = np.broadcast_to(np.arange(4), (2, 4))
    e = error_table([1.0, 0.5], lv)
    np.testing.assert_allclose(e[0], [0, 1 / 9, 4 / 9, 1])
    np.testing.assert_allclose(e[1], 0.5 * e[0])
    # multi-format: same level -> same error, normalised by the grid size
    lvm = level_index(options(["bsr16x1", "bsr4x1"], sparsity_levels(count=3)))
    e2 = error_table([1.0], lvm[None, :])
    assert list(lvm) == [0, 1, 2, 3, 1, 2, 3]
    np.testing.assert_allclose(e2[0], [0, 1 / 9, 4 / 9, 1, 1 / 9, 4 / 9, 1])


def test_search_deterministic_and_cached():
    T, loss, budget, _ = problem()
    calls = []

    def counted(ch):
        calls.append(tuple(ch))
        return loss(ch)

    kw = dict(times=T, budget=budget, n_layers=L, n_random=15, n_local=8, buckets=2000)
    r1 = search(counted, seed=7, **kw)
    assert len(calls) == len(set(calls)) == r1.n_evals  # identical profiles evaluated once
    r2 = search(loss, seed=7, **kw)
    assert r1.best_choice == r2.best_choice and r1.best_loss == r2.best_loss
    np.testing.assert_array_equal(r1.best_c, r2.best_c)
    assert [h["loss"] for h in r1.history] == [h["loss"] for h in r2.history]
    r3 = search(loss, seed=8, **kw)
    assert [h["loss"] for h in r3.history] != [h["loss"] for h in r1.history]
    assert len(r1.history) == 15 + 8 * math.ceil(0.1 * L)
    assert sum(T[l, o] for l, o in enumerate(r1.best_choice)) <= budget
    assert r1.best_loss == pytest.approx(loss(r1.best_choice))


def test_search_improves_over_random_and_uniform():
    T, loss, budget, sens = problem(1)
    r = search(loss, T, budget, L, seed=0, n_random=20, n_local=30, buckets=2000)
    random_best = min(h["loss"] for h in r.history if h["phase"] == "random")
    assert r.best_loss <= random_best
    assert any(h["improved"] for h in r.history if h["phase"] == "local")
    assert r.best_loss < loss(uniform_profile(T, budget))
    # best_loss is monotone along the history
    b = [h["best_loss"] for h in r.history]
    assert all(x >= y for x, y in zip(b, b[1:]))
    # close to the profile the DP gives with the hidden true sensitivities
    true_e = error_table(sens, np.broadcast_to(np.arange(S), (L, S)))
    oracle = loss(solve_dp(true_e, T, budget, 2000))
    assert r.best_loss <= 1.5 * oracle + 1e-9


def test_search_max_evals_and_progress():
    T, loss, budget, _ = problem(2)
    seen = []
    r = search(loss, T, budget, L, seed=0, n_random=50, n_local=50, max_evals=12,
               progress=lambda step, total, best: seen.append((step, total, best)), buckets=1000)
    assert r.n_evals == 12
    assert seen and seen[-1][0] == len(r.history)
    assert seen[0][1] == 50 + 50 * 1
    with pytest.raises(ValueError):
        search(loss, T, budget, L, max_evals=0)
    with pytest.raises(ValueError):
        search(loss, T, budget, L + 1)


def test_search_infeasible_before_any_eval():
    T, loss, _, _ = problem()
    calls = []
    with pytest.raises(InfeasibleSpeedupError):
        search(lambda ch: calls.append(1) or 0.0, T, 0.01, L, base=T[:, 0].sum(), fixed=0.0)
    assert calls == []


def test_uniform_profile():
    T, _, budget, _ = problem()
    ch = uniform_profile(T, budget)
    assert len(set(ch)) == 1
    i = ch[0]
    assert T[:, i].sum() <= budget < T[:, i - 1].sum()
    assert uniform_profile(T, 1e9) == [0] * L
    with pytest.raises(InfeasibleSpeedupError) as ei:
        uniform_profile(T, T[:, -1].sum() * 0.9, base=T[:, 0].sum())
    assert ei.value.max_speedup == pytest.approx(T[:, 0].sum() / T[:, -1].sum())


def test_uniform_profile_multiformat_picks_fastest_format():
    grid = sparsity_levels(count=4)
    opts = options(["bsr16x1", "bsr4x1"], grid)
    lv = level_index(opts)
    t_slow = 1 - grid[1:]
    row = np.concatenate([[1.0], t_slow, 0.5 * t_slow])
    T = np.tile(row, (3, 1))
    ch = uniform_profile(T, T[0, 5] * 3 + 1e-9, levels=lv)  # fast format, level 1
    assert [opts[i].format for i in ch] == ["bsr4x1"] * 3
    assert {opts[i].level for i in ch} == {1}


def test_gmp_profile():
    rng = np.random.default_rng(0)
    grid = sparsity_levels(count=S - 1)
    # layer scales differ: GMP prunes small-magnitude layers much harder
    weights = {f"l{i}": rng.normal(0, 0.1 * (i + 1), (20, 30)) for i in range(L)}
    weights["l3"] = torch.tensor(weights["l3"])  # torch tensors accepted too
    dens = 1 - grid
    T = np.tile(0.1 + 0.9 * dens, (L, 1))
    budget = 0.5 * T[:, 0].sum()
    ch = gmp_profile(weights, T, grid, budget)
    assert sum(T[l, o] for l, o in enumerate(ch)) <= budget
    assert ch[0] >= ch[-1]  # the smallest-magnitude layer is the most pruned
    assert gmp_profile(weights, T, grid, 1e9) == [0] * L
    with pytest.raises(InfeasibleSpeedupError):
        gmp_profile(weights, T, grid, 0.01, base=T[:, 0].sum())
    with pytest.raises(ValueError):
        gmp_profile({"a": np.ones(3)}, T, grid, budget)


def test_gmp_threshold_is_global():
    # two layers, identical times: GMP must follow magnitudes, not balance layers
    grid = sparsity_levels(count=11)
    w = {"big": np.linspace(1, 2, 1000), "small": np.linspace(0.001, 0.01, 1000)}
    T = np.tile(1 - grid * 0.9, (2, 1))
    ch = gmp_profile(w, T, grid, T[0, 0] + T[0, -1] + 1e-9)
    assert ch == [0, len(grid) - 1]


def test_ragged_tables_and_multiformat_search():
    # layer 1 offers dense only (e.g. a layer kept dense); layers pick formats freely
    grid = sparsity_levels(count=5)
    opts = options(["bsr16x1", "1x1"], grid)
    lv = level_index(opts)
    full = np.concatenate([[1.0], 1 - 0.9 * grid[1:], 1 - 0.5 * grid[1:]])
    times = [full, [1.0], full]
    ch = uniform_profile(times, 2.0 + 1e-9, levels=lv)
    assert ch[1] == 0 and opts[ch[0]].format == "bsr16x1"
    assert 1.0 + 2 * full[ch[0]] <= 2.0 + 1e-9

    def loss(choice):
        return sum(opts[o].level ** 2 * w for o, w in zip(choice, (1.0, 0.0, 0.1)))

    r = search(loss, times, 2.2, 3, seed=0, n_random=10, n_local=5, levels=np.tile(lv, (3, 1)),
               n_levels=len(grid), buckets=500)
    assert r.best_choice[1] == 0
    assert opts[r.best_choice[0]].level <= opts[r.best_choice[2]].level  # layer 0 is sensitive
    assert sum(np.asarray(t)[o] for t, o in zip(times, r.best_choice)) <= 2.2


def test_a_baseline_profile_of_lower_loss_wins_over_the_searched_one():
    searched = SearchResult(best_c=np.array([0.1, 0.9]), best_choice=[3, 1], best_loss=2.0)
    losses = {(3, 1): 2.0, (2, 2): 1.0, (1, 3): 5.0}
    evaluated = []

    def loss(choice):
        evaluated.append(tuple(choice))
        return losses[tuple(choice)]
    assert best_of(loss, searched, {"uniform": [2, 2], "gmp": [1, 3]}) == ([2, 2], 1.0, "uniform")
    assert evaluated == [(2, 2), (1, 3)]
    # no candidate better (ties keep the searched profile): the search's result stands
    assert best_of(loss, searched, {"gmp": [1, 3]}) == ([3, 1], 2.0, "dp")
    assert best_of(loss, searched, {}) == ([3, 1], 2.0, "dp")


def test_patience_stops_stalled_step_sizes_and_ranked_lists_the_best():
    rng = np.random.default_rng(0)
    L, S = 8, 6
    T = np.sort(rng.uniform(0.1, 1.0, (L, S)), axis=1)[:, ::-1]
    budget = T[:, 2].sum()

    def loss(ch):
        return float(sum(ch))

    full = search(loss, T, budget, L, seed=0, n_random=10, n_local=40)
    short = search(loss, T, budget, L, seed=0, n_random=10, n_local=40, patience=5)
    assert len(short.history) < len(full.history)
    assert short.best_loss >= full.best_loss          # never better than the exhaustive run
    top = short.ranked(3)
    assert top[0] == short.best_choice and len({tuple(t) for t in top}) == len(top)
    assert [short.evaluated[tuple(t)] for t in top] == sorted(short.evaluated[tuple(t)] for t in top)
