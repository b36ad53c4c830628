"""Adding a pruning method touches one file plus its registration.

The method below is the whole of it: a function from the SearchProblem (latency table,
budget, level indices, stitched loss) and solve-sparsity's options to one option per layer,
registered under a name. spdy.compile(method=...), `spdy compile --method` and the pass's
text form then accept the name; nothing else in spdy changes. (A method shipped with spdy
would live in its own file next to spdy/passes/search_methods.py and be imported there.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import spdy
from spdy.errors import SpdyError
from spdy.passes.search_methods import MethodResult, SearchProblem, register_method, unregister_method
from tests.compile.fakes import FakeDevice, base_s, fixed_latency_table

NAME = "toy-even-cut"


def even_cut(problem: SearchProblem, opts) -> MethodResult:
    """Every layer gets its densest option that cuts the layer's time by the factor the budget
    cuts the total (no loss evaluated: a toy)."""
    T = problem.times
    ratio = problem.budget / float(T[:, 0].sum())
    densest_first = np.argsort(problem.levels, kind="stable")
    choice = []
    for row in T:
        fits = [int(j) for j in densest_first if row[j] <= row[0] * ratio]
        choice.append(fits[0] if fits else int(np.argmin(row)))
    return MethodResult(choice, {"ratio": round(ratio, 4), "losses_evaluated": 0})


@pytest.fixture
def toy_method():
    register_method(NAME)(even_cut)       # the registration
    yield NAME
    unregister_method(NAME)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).eval()


def test_a_registered_method_compiles_end_to_end(toy_method, tmp_path):
    model = _model()
    g = torch.Generator().manual_seed(1)
    x, calib = torch.randn(8, 32, generator=g), [torch.randn(8, 32, generator=g) for _ in range(2)]
    with fixed_latency_table():
        cm = spdy.compile(model, (x,), speedup=1.3, calib=calib, method=toy_method, formats=("bsr16x1",),
                          n_samples=16, grid_levels=6, tune=False, compare_onnxruntime=False,
                          measure=FakeDevice(base_s(model), 1.3), workdir=tmp_path)
    solve = next(p for p in cm.passlog if p["pass"] == "solve-sparsity")
    assert solve["options"].startswith(f"solve-sparsity{{method={toy_method},") and solve["stats"]["ratio"] < 1
    assert cm.report["method"] == toy_method and cm.report["predicted_speedup"] >= 1.3
    assert any(p["sparsity"] > 0 for p in cm.profile.values())
    np.testing.assert_allclose(cm(x).numpy(), cm.pruned_model(x).detach().numpy(), atol=1e-4)


def test_the_cli_and_the_api_offer_it_only_while_registered(toy_method):
    from spdy.cli import build_parser
    assert build_parser().parse_args(["compile", "m:f", "-o", "x", "--method", toy_method]).method == toy_method
    unregister_method(toy_method)
    with pytest.raises(SpdyError, match=f"method must be one of spdy, uniform, gmp, dp-only, got '{toy_method}'"):
        spdy.compile(torch.nn.Linear(4, 4), (torch.randn(1, 4),), method=toy_method)
    register_method(toy_method)(even_cut)
    with pytest.raises(ValueError, match="registered twice"):
        register_method(toy_method)(lambda p, o: None)
    with pytest.raises(ValueError, match="built-in"):
        unregister_method("spdy")
