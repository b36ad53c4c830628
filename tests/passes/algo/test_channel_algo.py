"""Pure parts of the structured compile: width grids, layer dims, LS error/re-fit, the coupled solve."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn as nn

from spdy.chex import channel_groups
from spdy.chex._testmodels import residual_cnn
from spdy.errors import InfeasibleSpeedupError
from spdy.ir.layers import LayerInfo
from spdy.passes.algo.channel_recon import (collect_grams, columns_of, group_errors, refit, refit_consumers,
                                            relative_error)
from spdy.passes.algo.channel_solve import solve_widths, total_time
from spdy.passes.algo.channel_widths import LayerDims, decision_groups, layer_dims, width_grid
from spdy.passes.algo.surgery import ChannelSurgeryError, apply_history, history_from_keep


def test_width_grid_rounds_and_never_reaches_zero():
    assert width_grid(64) == [64, 56, 48, 40, 32, 24, 16, 8]
    g = width_grid(512)
    assert g[0] == 512 and all(w % 16 == 0 and w > 0 for w in g) and g == sorted(g, reverse=True)
    assert width_grid(3) == [3, 2, 1]
    assert width_grid(1) == [1]
    assert min(width_grid(10, (1.0, 0.01))) >= 1
    with pytest.raises(ChannelSurgeryError, match=r"\(0, 1\]"):
        width_grid(64, (1.0, 0.0))


def test_layer_dims_follow_groups():
    model, x = residual_cnn().eval(), torch.randn(1, 1, 28, 28)
    groups = channel_groups(model, (x,))
    gm = torch.fx.symbolic_trace(model)
    from torch.fx.passes.shape_prop import ShapeProp
    ShapeProp(gm).propagate(x)
    shapes = {n.target: (tuple(n.args[0].meta["tensor_meta"].shape), tuple(n.meta["tensor_meta"].shape))
              for n in gm.graph.nodes if n.op == "call_module"}
    mods = dict(model.named_modules())
    layers = [LayerInfo(q, "linear" if isinstance(m, nn.Linear) else "conv2d", q, q + ".weight",
                        tuple(m.weight.shape), shapes[q][0], shapes[q][1])
              for q, m in mods.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    dims = layer_dims(layers, groups)
    sizes = {g.id: g.size for g in groups}
    dec = decision_groups(groups)
    assert dec and all(g.prunable for g in dec)
    widths = {g.id: max(1, g.size // 2) for g in dec}
    keep = {g.id: list(range(widths[g.id])) for g in dec}
    small = apply_history(model, history_from_keep(model, groups, keep))
    smods = dict(small.named_modules())
    for q, d in dims.items():
        cin, cout = d.dims(sizes, widths)
        m = smods[q]
        if isinstance(m, nn.Linear):
            assert (cin, cout) == (m.in_features, m.out_features), q
        else:
            assert (cin, cout) == (m.in_channels, m.out_channels), q
    assert small(x).shape == model(x).shape


def test_relative_error_matches_lstsq_reference():
    torch.manual_seed(0)
    lin = nn.Linear(12, 5)
    X = torch.randn(400, 12) @ torch.randn(12, 12)   # correlated features
    H = (X.double().T @ X.double()) / X.shape[0]
    kept = np.array([0, 2, 3, 7, 8, 11])
    W = lin.weight.detach().double()
    Y = X.double() @ W.T
    sol = torch.linalg.lstsq(X.double()[:, kept], Y).solution     # [6, 5]
    ref = float(((X.double()[:, kept] @ sol - Y) ** 2).sum() / (Y ** 2).sum())
    assert relative_error(lin, H, kept, damp=0.0) == pytest.approx(ref, rel=1e-6, abs=1e-9)
    Wn = refit(lin, H, kept, damp=0.0)
    assert torch.allclose(Wn, sol.T, atol=1e-6)
    assert relative_error(lin, H, np.arange(12)) == 0.0
    # keeping more columns never hurts
    assert relative_error(lin, H, kept[:3]) >= relative_error(lin, H, kept)


def test_conv_grams_and_refit_beat_plain_slicing():
    torch.manual_seed(0)
    model, x = residual_cnn().eval(), torch.randn(1, 1, 28, 28)
    groups = channel_groups(model, (x,))
    batches = [torch.randn(4, 1, 28, 28) for _ in range(3)]
    g = next(g for g in groups if g.name == "layers.1.0.conv1")
    consumers = [m.qualname for m in g.members if m.kind == "in"]
    grams = collect_grams(model, consumers, batches)
    conv = dict(model.named_modules())[consumers[0]]
    assert grams[consumers[0]].shape == (conv.in_channels * 9,) * 2
    assert columns_of(conv, [1]).tolist() == list(range(9, 18))
    errs = group_errors(model, g, [g.size, g.size // 2, 2], grams)
    assert errs[0] == 0.0 and 0.0 < errs[1] < errs[2] <= len(consumers)
    keep = {g.id: list(range(0, g.size, 2))}
    history = history_from_keep(model, groups, keep)
    plain = apply_history(model, history)
    fitted = apply_history(model, history)
    assert refit_consumers(fitted, model, history, grams) == consumers
    with torch.no_grad():
        ref = torch.cat([model(b) for b in batches])
        e_plain = ((torch.cat([plain(b) for b in batches]) - ref) ** 2).sum()
        e_fit = ((torch.cat([fitted(b) for b in batches]) - ref) ** 2).sum()
    assert e_fit < e_plain


def _chain_problem():
    """Three groups in a chain: layer i reads group i-1 and writes group i; time = cin * cout."""
    sizes = {0: 4, 1: 8, 2: 8, 3: 4}
    dims = {f"l{i}": LayerDims(f"l{i}", sizes[i - 1] if i else 3, sizes[i],
                               [(i - 1, 1)] if i else [], [(i, 1)]) for i in range(4)}
    grid = {g: width_grid(sizes[g], (1.0, 0.75, 0.5, 0.25)) for g in (0, 1, 2)}
    errors = {g: [(1 - w / sizes[g]) ** 2 * (g + 1) for w in grid[g]] for g in grid}

    def timer(q, cin, cout):
        return 1e-3 * cin * cout

    return sizes, dims, grid, errors, timer


def test_coupled_solve_is_feasible_and_near_brute_force():
    sizes, dims, grid, errors, timer = _chain_problem()
    base = total_time(dims, sizes, {}, timer, 0.01)
    sol = solve_widths([0, 1, 2], grid, errors, dims, sizes, timer, base=base, fixed=0.01, speedup=2.0)
    limit = base / 2.0
    assert sol.time == pytest.approx(total_time(dims, sizes, sol.widths, timer, 0.01))
    assert sol.time <= limit + 1e-12 and sol.predicted_speedup >= 2.0
    best = min((sum(errors[g][grid[g].index(w)] for g, w in zip((0, 1, 2), c)), c)
               for c in itertools.product(*(grid[g] for g in (0, 1, 2)))
               if total_time(dims, sizes, dict(zip((0, 1, 2), c)), timer, 0.01) <= limit)
    # the fixed-point iteration is a heuristic: within a factor of the exact optimum here
    assert sol.error <= best[0] * 1.5 + 1e-9


def test_coupled_solve_infeasible_names_reach():
    sizes, dims, grid, errors, timer = _chain_problem()
    base = total_time(dims, sizes, {}, timer, 0.01)
    with pytest.raises(InfeasibleSpeedupError) as e:
        solve_widths([0, 1, 2], grid, errors, dims, sizes, timer, base=base, fixed=0.01, speedup=50.0)
    assert e.value.max_speedup < 50.0
