import numpy as np
import pytest

from spdy.passes.algo.grid import options, sparsity_levels
from spdy.passes.algo.insitu_calibration import MAX_RATIO, calibrate_rows, dense_in_place, predicted_time

OPTS = options(("bsr16x1", "bsr4x1"), sparsity_levels(3))  # dense + 3 levels x 2 formats


def _table():
    return np.array([[4.0, 3.0, 2.0, 1.0, 3.5, 2.5, 1.5],
                     [8.0, 6.0, 4.0, 2.0, 7.0, 5.0, 3.0],
                     [2.0, 1.5, 1.0, 0.5, 1.8, 1.2, 0.8]])


def test_each_measured_layer_is_scaled_by_its_own_in_place_ratio():
    t = _table()
    choice = [2, 3, 0]            # row 0 bsr16x1 mid, row 1 bsr16x1 sparsest, row 2 dense
    out, ratios = calibrate_rows(t, OPTS, choice, {0: 3.0, 1: 2.0, 2: 2.0})
    assert ratios[0] == pytest.approx(1.5) and ratios[1] == pytest.approx(1.0)
    np.testing.assert_allclose(out[0, 1:], t[0, 1:] * 1.5)      # every sparse format of the row
    np.testing.assert_allclose(out[1, 1:], t[1, 1:])
    # the dense-chosen row: its dense time stands, its sparse options get the median ratio
    assert out[2, 0] == t[2, 0]
    np.testing.assert_allclose(out[2, 1:], t[2, 1:] * np.median([1.5, 1.0]))
    assert (out[:, 0] == t[:, 0]).all()                          # dense column untouched
    # the corrected table predicts what was measured for the profile that ran
    assert predicted_time(out, choice, 1.0) == pytest.approx(3.0 + 2.0 + 2.0 + 1.0)


def test_frame_converts_a_slower_machine_back_to_the_table_clock():
    t = _table()
    # the whole machine ran 2x slower during this round: in-place 4.0 for a table 2.0 is no news
    out, ratios = calibrate_rows(t, OPTS, [2, 0, 0], {0: 4.0}, frame=0.5)
    assert ratios[0] == pytest.approx(1.0)
    np.testing.assert_allclose(out, t)


def test_ratios_are_clipped_and_missing_layers_leave_the_table_alone():
    t = _table()
    out, ratios = calibrate_rows(t, OPTS, [3, 0, 0], {0: 100.0})
    assert ratios[0] == MAX_RATIO
    out, ratios = calibrate_rows(t, OPTS, [0, 0, 0], {0: 1.0, 1: 1.0, 2: 1.0})  # all dense: nothing to learn
    assert ratios == {} and np.array_equal(out, t)


def test_dense_column_from_the_artifact_and_fixed_is_the_rest_of_base():
    t = _table()
    out, fixed = dense_in_place(t, {0: 3.0, 1: 5.0, 2: 1.0}, base=12.0, total_in_place=12.0)
    np.testing.assert_allclose(out[:, 0], [3.0, 5.0, 1.0])
    np.testing.assert_allclose(out[:, 1:], t[:, 1:])
    assert fixed == pytest.approx(3.0)
    assert dense_in_place(t, {0: 3.0, 2: 1.0}, base=12.0) is None      # a row not found: no answer


def test_an_instrumented_run_slower_than_base_is_shared_in_proportion():
    t = _table()
    # the profiled run took 18 (rows 9, the rest 9) where base measured 12: both shrink by 2/3
    out, fixed = dense_in_place(t, {0: 3.0, 1: 5.0, 2: 1.0}, base=12.0, total_in_place=18.0)
    np.testing.assert_allclose(out[:, 0], np.array([3.0, 5.0, 1.0]) * 12 / 18)
    assert fixed == pytest.approx(9.0 * 12 / 18)
    # without the run's total, rows over base still fit inside it
    out, fixed = dense_in_place(t, {0: 6.0, 1: 6.0, 2: 1.0}, base=12.0)
    assert out[:, 0].sum() < 12.0 and fixed > 0
    out, fixed = dense_in_place(t, {0: 3.0, 1: 5.0, 2: 1.0}, base=12.0)  # rows inside base: as measured
    np.testing.assert_allclose(out[:, 0], [3.0, 5.0, 1.0])


def test_weight_bytes_count_values_and_block_indices():
    from spdy.passes.algo.insitu_calibration import weight_bytes
    dense, b16_half = OPTS[0], OPTS[2]        # dense, bsr16x1 at the middle level
    assert weight_bytes(64 * 32, 64, dense) == 4 * 64 * 32
    blocks = (1 - b16_half.sparsity) * 64 * 32 / 16
    assert weight_bytes(64 * 32, 64, b16_half) == pytest.approx(blocks * (16 * 4 + 4) + 4 * (64 / 16 + 1))
    assert weight_bytes(64 * 32, 64, OPTS[3]) < weight_bytes(64 * 32, 64, OPTS[1])   # sparser reads less


def test_bytes_model_charges_the_measured_option_exactly_and_sparser_options_less():
    from spdy.passes.algo.insitu_calibration import calibrate_rows_by_bytes, weight_bytes
    t = _table() / 1e3
    shapes = [(4096, 64), (65536, 256), (65536, 256)]
    choice = [1, 2, 0]            # row 2 ran dense: it gets the median rate times its own bytes
    out, rates = calibrate_rows_by_bytes(t, OPTS, choice, {0: 4.5e-3, 1: 6.0e-3}, shapes)
    assert out[0, 1] == pytest.approx(4.5e-3) and out[1, 2] == pytest.approx(6.0e-3)
    assert predicted_time(out, choice, 0.0) == pytest.approx(4.5e-3 + 6.0e-3 + t[2, 0])
    added = out[1, 1:4] - t[1, 1:4]            # extra time shrinks with the bytes read
    assert added[0] > added[1] > added[2] > 0
    assert out[1, 3] / t[1, 3] < out[1, 2] / t[1, 2]   # ...so the sparsest option's ratio is lower
    k = np.median(list(rates.values()))
    assert rates[2] == k and out[2, 2] == pytest.approx(min(t[2, 2] + k * weight_bytes(*shapes[2], OPTS[2]),
                                                            MAX_RATIO * t[2, 2]))
    assert (out[:, 0] == t[:, 0]).all()


def test_bytes_model_bounds_and_nothing_to_learn():
    from spdy.passes.algo.insitu_calibration import MIN_RATIO, calibrate_rows_by_bytes
    t = _table() / 1e3
    shapes = [(4096, 64)] * 3
    out, _ = calibrate_rows_by_bytes(t, OPTS, [3, 0, 0], {0: 1.0}, shapes)   # 1 s: a measuring accident
    assert (out[:, 1:] <= MAX_RATIO * t[:, 1:] + 1e-12).all() and (out[:, 1:] >= MIN_RATIO * t[:, 1:] - 1e-12).all()
    out, rates = calibrate_rows_by_bytes(t, OPTS, [0, 0, 0], {0: 1e-3}, shapes)
    assert rates == {} and np.array_equal(out, t)
