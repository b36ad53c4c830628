"""Calibration sets are validated before long work: clear errors, bounded collection."""
import pytest
import torch

from spdy.errors import CalibrationError, SpdyError
from spdy.passes.algo.calib import check_finite_weights, collect_calibration

EX = torch.zeros(1, 3, 8, 8)


def batches(n_batches=4, bs=5, labels=True):
    g = torch.Generator().manual_seed(0)
    for _ in range(n_batches):
        x = torch.randn(bs, 3, 8, 8, generator=g)
        yield (x, torch.randint(0, 10, (bs,), generator=g)) if labels else x


def test_collects_and_rebatches_with_labels():
    cs = collect_calibration(list(batches()), EX, n_samples=17, batch_size=8)
    assert cs.n_samples == 17 and cs.has_labels
    assert [x.shape[0] for x in cs.inputs] == [8, 8, 1]
    assert [y.shape[0] for y in cs.labels] == [8, 8, 1]
    ref = torch.cat([x for x, _ in batches()])[:17]
    torch.testing.assert_close(torch.cat(cs.inputs), ref)


def test_without_labels_and_single_samples():
    cs = collect_calibration(batches(labels=False), (EX,), n_samples=100)
    assert cs.n_samples == 20 and cs.labels is None and not cs.has_labels
    singles = [torch.randn(3, 8, 8) for _ in range(3)]  # unbatched samples
    cs = collect_calibration(singles, EX)
    assert cs.n_samples == 3 and cs.inputs[0].shape == (3, 3, 8, 8)
    cs = collect_calibration([(torch.randn(3, 8, 8), 4)], EX)  # scalar label
    assert cs.labels[0].tolist() == [4]


def test_stops_reading_after_n_samples():
    seen = []

    def gen():
        for i in range(1000):
            seen.append(i)
            yield torch.randn(4, 3, 8, 8)
    cs = collect_calibration(gen(), EX, n_samples=10)
    assert cs.n_samples == 10 and len(seen) == 3


def test_empty_is_an_error():
    for empty in ([], iter(()), (x for x in [])):
        with pytest.raises(CalibrationError, match="empty"):
            collect_calibration(empty, EX)
    with pytest.raises(CalibrationError):
        collect_calibration(None, EX)
    with pytest.raises(CalibrationError):
        collect_calibration(42, EX)
    assert issubclass(CalibrationError, SpdyError)


def test_wrong_shape_names_expected_and_actual():
    with pytest.raises(CalibrationError) as ei:
        collect_calibration([torch.randn(2, 1, 28, 28)], EX)
    msg = str(ei.value)
    assert "(2, 1, 28, 28)" in msg and "3, 8, 8" in msg
    with pytest.raises(CalibrationError):
        collect_calibration([torch.randn(2, 3, 8, 9)], EX)
    # a good first item does not hide a bad later one
    with pytest.raises(CalibrationError, match="item 1"):
        collect_calibration([torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8)], EX)


def test_nan_and_inf_are_errors():
    x = torch.randn(2, 3, 8, 8)
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(CalibrationError, match="NaN"):
        collect_calibration([x], EX)
    x[1, 0, 0, 0] = float("inf")
    with pytest.raises(CalibrationError, match="inf"):
        collect_calibration([(x, torch.zeros(2))], EX)
    with pytest.raises(CalibrationError, match="label"):
        collect_calibration([(torch.randn(2, 3, 8, 8), torch.tensor([0.0, float("nan")]))], EX)


def test_structure_dtype_and_label_mismatches():
    with pytest.raises(CalibrationError, match="pair"):
        collect_calibration([(torch.randn(2, 3, 8, 8),) * 3], EX)
    with pytest.raises(CalibrationError, match="dtype"):
        collect_calibration([torch.randint(0, 5, (2, 3, 8, 8))], EX)
    with pytest.raises(CalibrationError, match="labels"):
        collect_calibration([(torch.randn(2, 3, 8, 8), torch.zeros(2)),
                             torch.randn(2, 3, 8, 8)], EX)
    with pytest.raises(CalibrationError, match="3 labels"):
        collect_calibration([(torch.randn(2, 3, 8, 8), torch.zeros(3))], EX)


def test_multi_input_and_dict_inputs():
    ex = (torch.zeros(1, 4), torch.zeros(1, 2, dtype=torch.long))
    items = [((torch.randn(3, 4), torch.ones(3, 2, dtype=torch.long)), torch.zeros(3))]
    cs = collect_calibration(items, ex)
    assert isinstance(cs.inputs[0], tuple) and cs.inputs[0][1].dtype == torch.long
    with pytest.raises(CalibrationError, match="batch size"):
        collect_calibration([(torch.randn(3, 4), torch.ones(2, 2, dtype=torch.long))], ex)
    exd = {"input_ids": torch.zeros(1, 6, dtype=torch.long),
           "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    cs = collect_calibration([{"input_ids": torch.ones(2, 6, dtype=torch.long),
                               "attention_mask": torch.ones(2, 6, dtype=torch.long)}], exd)
    assert set(cs.inputs[0]) == set(exd) and cs.n_samples == 2
    with pytest.raises(CalibrationError, match="attention_mask"):
        collect_calibration([{"input_ids": torch.ones(2, 6, dtype=torch.long),
                              "attention_mask": torch.ones(2, 7, dtype=torch.long)}], exd)


def test_check_finite_weights():
    m = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    check_finite_weights(m)
    with torch.no_grad():
        m[0].weight[0, 0] = float("nan")
    m[1].running_var[0] = float("inf")
    with pytest.raises(CalibrationError) as ei:
        check_finite_weights(m)
    assert "0.weight" in str(ei.value) and "1.running_var" in str(ei.value)
    with pytest.raises(CalibrationError):
        check_finite_weights({"w": torch.tensor([float("nan")])})


IDS = torch.zeros(1, 16, dtype=torch.long)   # a token model's example: ids and mask, 16 long


def token_batch(bs, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 100, (bs, length), generator=g), torch.ones(bs, length, dtype=torch.long)


def test_token_inputs_may_be_shorter_and_runs_of_one_length_are_rebatched_apart():
    items = [token_batch(3, 5), token_batch(3, 5, 1), token_batch(4, 9), token_batch(2, 16)]
    cs = collect_calibration(items, (IDS, IDS), n_samples=100, batch_size=4)
    assert cs.n_samples == 12
    assert [tuple(ids.shape) for ids, _ in cs.inputs] == [(4, 5), (2, 5), (4, 9), (2, 16)]
    torch.testing.assert_close(torch.cat([cs.inputs[0][0], cs.inputs[1][0]]),
                               torch.cat([items[0][0], items[1][0]]))
    # a later run of an earlier length is a run of its own (item order is kept)
    cs = collect_calibration([token_batch(2, 5), token_batch(2, 9), token_batch(2, 5)], (IDS, IDS), batch_size=8)
    assert [ids.shape[1] for ids, _ in cs.inputs] == [5, 9, 5]
    # a dict of token inputs and a single unbatched sample
    cs = collect_calibration([{"ids": token_batch(1, 7)[0][0], "mask": token_batch(1, 7)[1][0]}],
                             {"ids": IDS, "mask": IDS})
    assert cs.inputs[0]["ids"].shape == (1, 7)


def test_only_token_inputs_may_be_shorter_and_never_longer():
    with pytest.raises(CalibrationError, match="shorter along the last axis"):
        collect_calibration([token_batch(2, 17)], (IDS, IDS))       # longer than the example
    with pytest.raises(CalibrationError, match=r"\(2, 3, 8, 7\)"):
        collect_calibration([torch.randn(2, 3, 8, 7)], EX)           # float inputs: exact shape
    with pytest.raises(CalibrationError, match="disagree on their length"):
        ids, _ = token_batch(2, 5)
        collect_calibration([(ids, torch.ones(2, 6, dtype=torch.long))], (IDS, IDS))
