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
