"""Effective levels: int8 options placed on the fp32 error curve of their own layer."""
import numpy as np

from spdy.passes.algo.error_levels import effective_levels


def test_int8_options_land_where_fp32_has_the_same_error():
    # options: dense, fp32 levels 1..3, dense-int8, int8 levels 1..3
    lv = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    ref = np.array([False, True, True, True, False, False, False, False])
    errs = np.array([[0.0, 1.0, 4.0, 9.0, 2.5, 2.0, 5.0, 16.0]])
    out = effective_levels(lv, errs, ref, n_levels=4)
    assert out[0, :4].tolist() == [0, 1, 2, 3]                 # reference options keep their index
    assert out[0, 4] == 1 + (2.5 - 1.0) / (4.0 - 1.0)           # between levels 1 and 2
    assert out[0, 5] == 1 + (2.0 - 1.0) / 3.0
    assert out[0, 6] == 2 + (5.0 - 4.0) / 5.0
    assert np.isclose(out[0, 7], 3 * np.sqrt(16.0 / 9.0))       # beyond the curve: e ~ i**2


def test_small_error_is_below_level_one_and_rows_are_independent():
    lv = np.array([0, 1, 2, 0])
    ref = np.array([False, True, True, False])
    errs = np.array([[0.0, 1.0, 2.0, 0.5], [0.0, 10.0, 20.0, 0.5]])
    out = effective_levels(lv, errs, ref, n_levels=3)
    assert out[0, 3] == 0.5 and out[1, 3] == 0.05


def test_unknown_errors_keep_raw_levels_and_no_curve_means_no_change():
    lv = np.array([0, 1, 0])
    ref = np.array([False, True, False])
    out = effective_levels(lv, np.array([[0.0, np.nan, 3.0]]), ref, n_levels=2)
    assert out.tolist() == [[0, 1, 0]]
    out = effective_levels(lv, np.array([[0.0, 1.0, np.nan]]), ref, n_levels=2)
    assert out.tolist() == [[0, 1, 0]]


def test_non_monotone_reference_is_made_monotone():
    lv = np.array([0, 1, 2, 3, 0])
    ref = np.array([False, True, True, True, False])
    errs = np.array([[0.0, 2.0, 1.0, 3.0, 2.5]])   # level 2's error dipped: noise in the database
    out = effective_levels(lv, errs, ref, n_levels=4)
    assert 2 < out[0, 4] < 3
