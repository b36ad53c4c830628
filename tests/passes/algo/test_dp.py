"""SPDY Algorithm 1 (solve_dp): brute-force agreement, budget accounting, infeasibility."""
import itertools
import math

import numpy as np
import pytest

from spdy.errors import InfeasibleSpeedupError
from spdy.passes.algo.dp import budget_for, max_speedup, min_time, solve_dp


def brute_force(E, T, budget):
    best, arg = math.inf, None
    for combo in itertools.product(*[range(len(r)) for r in E]):
        t = sum(T[l][o] for l, o in enumerate(combo))
        e = sum(E[l][o] for l, o in enumerate(combo))
        if t <= budget and e < best:
            best, arg = e, combo
    return best, arg


def total(table, choice):
    return sum(table[l][o] for l, o in enumerate(choice))


@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_integer_times(seed):
    # integer times and buckets == budget: discretisation is exact, so the DP is optimal
    rng = np.random.default_rng(seed)
    L, S = rng.integers(1, 5), rng.integers(1, 5)
    T = rng.integers(0, 20, (L, S)).astype(float)
    E = rng.uniform(0, 1, (L, S))
    budget = int(rng.integers(T.min(axis=1).sum(), T.max(axis=1).sum() + 1))
    best, _ = brute_force(E, T, budget)
    choice = solve_dp(E, T, budget, buckets=max(budget, 1)) if budget > 0 else solve_dp(E, T, 0)
    assert total(T, choice) <= budget
    assert total(E, choice) == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_real_times_never_exceed_budget_and_near_optimal(seed):
    rng = np.random.default_rng(100 + seed)
    L, S = rng.integers(2, 6), rng.integers(2, 5)
    T = rng.uniform(0.1, 1.0, (L, S))
    E = rng.uniform(0, 1, (L, S))
    budget = rng.uniform(T.min(axis=1).sum(), T.max(axis=1).sum())
    choice = solve_dp(E, T, budget, buckets=10000)
    assert total(T, choice) <= budget  # ceil discretisation: the real sum fits
    # optimal for a budget shrunk by the worst-case rounding slack (L buckets)
    tight, _ = brute_force(E, T, budget * (1 - L / 10000))
    assert total(E, choice) <= tight + 1e-12
    best, _ = brute_force(E, T, budget)
    assert total(E, choice) >= best - 1e-12


def test_ragged_rows_and_inf_padding():
    E = [[0.0, 1.0, 3.0], [0.0, 2.0]]
    T = [[10.0, 5.0, 1.0], [10.0, 1.0]]
    assert solve_dp(E, T, 11, buckets=11) == [0, 1]  # time 11, error 2
    assert solve_dp(E, T, 6, buckets=6) == [1, 1]  # time 6, error 3
    # inf marks a missing option; it is never chosen even if it looks cheap
    E2 = [[0.0, 0.0], [0.0, np.inf]]
    T2 = [[5.0, 1.0], [5.0, 0.0]]
    assert solve_dp(E2, T2, 6, buckets=6) == [1, 0]
    T3 = [[5.0, np.inf], [5.0, 1.0]]
    assert solve_dp([[1.0, 0.0], [1.0, 0.0]], T3, 6, buckets=6) == [0, 1]


def test_generous_budget_picks_least_error():
    rng = np.random.default_rng(0)
    E = rng.uniform(0, 1, (6, 5))
    T = rng.uniform(0, 1, (6, 5))
    choice = solve_dp(E, T, 1e9)
    assert choice == list(E.argmin(axis=1))


def test_deterministic():
    rng = np.random.default_rng(3)
    E = rng.integers(0, 3, (8, 6)).astype(float)  # many ties
    T = rng.uniform(0, 1, (8, 6))
    b = T.mean(axis=1).sum()
    assert solve_dp(E, T, b) == solve_dp(E, T, b)


def test_rounding_edge_returns_fastest_profile():
    # each time is just above a bucket multiple: after ceil nothing fits, in real time it does
    T = np.array([[1.0, 0.50001], [1.0, 0.50001]])
    E = np.array([[0.0, 1.0], [0.0, 1.0]])
    choice = solve_dp(E, T, 1.00003, buckets=2)
    assert choice == [1, 1]
    assert total(T, choice) <= 1.00003


def test_infeasible_raises_with_max_speedup():
    T = np.array([[10.0, 4.0], [10.0, 6.0]])  # fastest profile: 10
    E = np.zeros((2, 2))
    base, fixed = 30.0, 10.0  # max speedup = 30 / (10 + 10) = 1.5
    with pytest.raises(InfeasibleSpeedupError) as ei:
        solve_dp(E, T, budget_for(base, fixed, 50.0), base=base, fixed=fixed)
    err = ei.value
    assert err.exit_code == 3
    assert err.max_speedup == pytest.approx(1.5)
    assert err.requested == pytest.approx(50.0)
    assert "1.50x" in str(err)
    # without base: relative to option 0 (dense) of every layer
    with pytest.raises(InfeasibleSpeedupError) as ei:
        solve_dp(E, T, 5.0)
    assert ei.value.max_speedup == pytest.approx(20.0 / 10.0)
    assert ei.value.requested == pytest.approx(20.0 / 5.0)


def test_negative_budget_is_infeasible():
    with pytest.raises(InfeasibleSpeedupError):
        solve_dp([[0.0]], [[1.0]], -1.0, base=2.0, fixed=3.0)


def test_budget_accounting():
    base, fixed = 100.0, 20.0
    assert budget_for(base, fixed, 2.0) == pytest.approx(30.0)
    assert budget_for(base, fixed, 1.0) == pytest.approx(80.0)  # = sum of dense layer times
    T = [[80.0, 40.0, 10.0]]
    assert min_time(T) == 10.0
    assert max_speedup(T, base, fixed) == pytest.approx(100.0 / 30.0)
    # the profile returned for speedup s really gives >= s end to end
    rng = np.random.default_rng(1)
    T = np.sort(rng.uniform(1, 10, (5, 8)), axis=1)[:, ::-1]
    E = np.sort(rng.uniform(0, 1, (5, 8)), axis=1)
    fixed = 7.0
    base = T[:, 0].sum() + fixed
    for s in (1.0, 1.3, 1.7, max_speedup(T, base, fixed) * 0.999):
        ch = solve_dp(E, T, budget_for(base, fixed, s), base=base, fixed=fixed)
        assert base / (fixed + total(T, ch)) >= s * (1 - 1e-12)
    with pytest.raises(ValueError):
        budget_for(0.0, 1.0, 2.0)
    with pytest.raises(ValueError):
        budget_for(1.0, -1.0, 2.0)


def test_input_validation():
    with pytest.raises(ValueError):
        solve_dp([[0.0]], [[1.0], [1.0]], 1.0)
    with pytest.raises(ValueError):
        solve_dp([[np.nan]], [[1.0]], 1.0)
    with pytest.raises(ValueError):
        solve_dp([[0.0]], [[-1.0]], 1.0)
    with pytest.raises(ValueError):
        solve_dp([[np.inf]], [[1.0]], 1.0)
    with pytest.raises(ValueError):
        solve_dp([[0.0]], [[1.0]], 1.0, buckets=0)
    with pytest.raises(ValueError):
        solve_dp([], [], 1.0)


def test_infeasible_error_reference_without_base():
    from spdy.passes.algo.dp import infeasible_error
    # layer 1 lacks option 0: its slowest option stands in for dense
    err = infeasible_error([[4.0, 2.0], [np.inf, 3.0, 1.0]], 1.0, None, 0.0, "x")
    assert err.max_speedup == pytest.approx((4.0 + 3.0) / 3.0)
    assert err.requested == pytest.approx(7.0)
