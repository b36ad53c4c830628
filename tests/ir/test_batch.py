"""The batch dimension of example inputs (spdy/ir/batch.py)."""
import pytest
import torch

from spdy.errors import InputShapeError, OptionError
from spdy.ir.batch import batch_of, check_batch_sizes, with_batch
from spdy.ir.trace import normalize_inputs


def test_batch_sizes_are_sorted_unique_positive_ints():
    assert check_batch_sizes(None) is None
    assert check_batch_sizes([8, 1, 8, 32]) == (1, 8, 32)
    for bad in (8, "1,8", [], [0], [1, 2.5], [True], [-3]):
        with pytest.raises(OptionError, match="batch_sizes"):
            check_batch_sizes(bad)


def test_batch_is_dimension_0_of_every_input():
    assert batch_of(normalize_inputs((torch.zeros(4, 3), torch.zeros(4, 7, 2)))) == 4
    assert batch_of(normalize_inputs({"ids": torch.zeros(2, 5, dtype=torch.long), "mask": torch.ones(2, 5)})) == 2
    with pytest.raises(InputShapeError, match="disagree on dimension 0"):
        batch_of(normalize_inputs((torch.zeros(4, 3), torch.zeros(3, 3))))
    with pytest.raises(InputShapeError, match="no batch dimension"):
        batch_of(normalize_inputs((torch.zeros(4, 3), torch.tensor(1.0))))


def test_with_batch_repeats_the_example_rows():
    x = torch.arange(6.0).reshape(3, 2)
    grown = with_batch(normalize_inputs({"x": x}), 7).kwargs["x"]
    assert grown.shape == (7, 2) and torch.equal(grown[:3], x) and torch.equal(grown[3:6], x) and torch.equal(grown[6], x[0])
    assert torch.equal(with_batch(normalize_inputs(x), 2).args[0], x[:2])
