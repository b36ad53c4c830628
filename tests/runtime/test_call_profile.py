import pytest
import torch

import spdy
from spdy.models.small import mlp
from spdy.runtime.call_profile import per_layer, profile_calls, profile_calls_interleaved


@pytest.fixture(scope="module")
def compiled():
    model = mlp().eval()
    return spdy.compile(model, (torch.randn(4, 64),), tune=False, measure=False, compare_onnxruntime=False)


def test_every_layer_is_found_in_the_artifact_and_the_calls_fit_in_a_run(compiled):
    calls = profile_calls(compiled.runner, runs=5)
    assert calls and all(t >= 0 for t in calls.values())
    names = [l["qualname"] for l in compiled.report["layers"]]
    layers = per_layer(calls, names)
    assert set(layers) == set(names) | {"(other)"}
    assert all(layers[n] > 0 for n in names), layers
    assert sum(layers.values()) == pytest.approx(sum(calls.values()))
    # the instrument is switched off again: the artifact still runs and gives the same output
    x = torch.randn(4, 64)
    torch.testing.assert_close(compiled.runner(x), compiled.runner(x))


def test_symbols_go_to_the_longest_matching_layer():
    calls = {"fc_linear": 1.0, "fc_out_linear": 2.0, "fc_out_bsr16x1": 0.5, "vm.builtin.alloc_tensor": 0.25}
    assert per_layer(calls, ["fc", "fc.out"]) == {"fc": 1.0, "fc.out": 2.5, "(other)": 0.25}


def test_interleaved_profiles_keep_each_artifact_apart(compiled):
    both = profile_calls_interleaved({"a": compiled.runner, "b": compiled.runner}, runs=3)
    assert set(both) == {"a", "b"} and set(both["a"]) == set(both["b"])


def test_the_instrument_cost_is_half_its_extra_time_per_call():
    from spdy.runtime.call_profile import instrument_cost
    # 100 calls, the instrumented runs 0.4 ms longer: 4 us per call, of which 2 us inside the intervals
    walls = [(1.4e-3, 1.0e-3), (1.5e-3, 1.1e-3), (9.0e-3, 1.0e-3)]   # one outlier: the median ignores it
    assert instrument_cost(walls, 100) == pytest.approx(2e-6)
    assert instrument_cost([(1.0e-3, 1.2e-3)], 100) == 0.0          # noise the other way: nothing taken off
    assert instrument_cost(walls, 0) == 0.0

