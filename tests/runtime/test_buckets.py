"""Dispatch of an artifact with a library per batch size (spdy/runtime/buckets.py), on fake
per-size runners: which size runs, the padding, the cut, the refusal."""
import numpy as np
import pytest
import torch

from spdy.errors import InputShapeError
from spdy.runtime.buckets import BucketedRunner, bucket_manifest, library_name, pad_rows


class FakeRunner:
    """Checks it gets exactly its batch size; returns (x * 2, a per-call constant)."""

    def __init__(self, batch):
        self.batch, self.calls = batch, 0
        self.manifest = {"outputs": [{"shape": [batch, 3]}, {"shape": [5]}]}

    def __call__(self, x):
        assert x.shape[0] == self.batch
        self.calls += 1
        return x * 2, np.full(5, self.batch)


def make():
    runners = {b: FakeRunner(b) for b in (1, 4, 8)}
    return BucketedRunner(runners, 4, {}), runners


def test_a_call_runs_the_smallest_size_that_holds_it_and_is_cut_back():
    r, runners = make()
    x = np.arange(18.0).reshape(6, 3)
    y, c = r(x)
    assert runners[8].calls == 1 and y.shape == (6, 3) and np.array_equal(y, x * 2)
    assert c.shape == (5,)       # an output without the batch dimension is not cut
    y, _ = r(x[:4])
    assert runners[4].calls == 1 and y.shape == (4, 3)
    t, _ = r(torch.ones(3, 3))
    assert isinstance(t, torch.Tensor) and t.shape == (3, 3)


def test_too_large_a_batch_is_refused_with_the_sizes():
    r, _ = make()
    with pytest.raises(InputShapeError, match=r"batch size 9 .*\(1, 4, 8\).*batch_sizes including 9"):
        r(np.zeros((9, 3)))


def test_padding_repeats_the_last_row():
    p = pad_rows(np.array([[1.0, 2.0], [3.0, 4.0]]), 4)
    assert p.tolist() == [[1, 2], [3, 4], [3, 4], [3, 4]]


def test_the_manifest_lists_each_size_and_its_library():
    m = bucket_manifest({1: {"inputs": ["a"], "outputs": ["o1"], "x": 1},
                         8: {"inputs": ["b"], "outputs": ["o8"], "x": 8}}, primary=8)
    assert m["x"] == 8 and [b["library"] for b in m["batch_buckets"]] == ["model.b1.so", "model.so"]
    assert library_name(8, 8) == "model.so" and library_name(1, 8) == "model.b1.so"
