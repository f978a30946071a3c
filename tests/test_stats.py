"""stats.py's pure rules with hand-checked values: the B x n cap, resample weights, upstream's
smoothed P/R/F1 (upstream-formats.md §4), the percentile interval, the p-values and Holm
(design.md Decisions, "Gate")."""

import numpy as np
import pytest

from mailwoman_eval import stats
from mailwoman_eval.errors import MwevalError
from mailwoman_eval.stats import (
    check_resample_size,
    f1_from_counts,
    holm,
    max_resamples,
    one_sided_drop_p,
    percentile_ci,
    prf_from_counts,
    resample_weights,
    two_sided_p,
)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 456])
def test_max_resamples_is_the_most_that_fit_the_cell_cap(n):
    b = max_resamples(n)
    m = max(n, 1)
    assert b * m <= stats.MAX_RESAMPLE_CELLS < (b + 1) * m
    check_resample_size(n, b)  # the cap itself is allowed ...
    with pytest.raises(MwevalError, match=f"at most {b} resamples"):
        check_resample_size(n, b + 1)  # ... one more is not


def test_resample_weights_checks_the_cap_before_drawing(monkeypatch):
    monkeypatch.setattr(stats, "MAX_RESAMPLE_CELLS", 100)
    assert resample_weights(10, 10, 0).shape == (10, 10)
    with pytest.raises(MwevalError):
        resample_weights(10, 11, 0)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_resample_weights_draw_n_entries_per_resample(n):
    w = resample_weights(n, 300, 3)
    assert w.shape == (300, n) and w.dtype == np.float64
    assert (w.sum(1) == n).all() and (w >= 0).all()
    assert np.array_equal(w, resample_weights(n, 300, 3))  # same seed, same draws (both runs share them)
    if n > 1:
        assert len({tuple(r) for r in w}) > 1  # and they vary across resamples


def test_resample_weights_of_no_entries_are_an_empty_matrix():
    w = resample_weights(0, 7, 0)
    assert w.shape == (7, 0) and w.dtype == np.float64


def test_prf_uses_upstreams_smoothing():
    """tp/(tp+fp+1e-9), tp/(tp+fn+1e-9), 2pr/(p+r+1e-9); 0 where nothing is counted."""
    p, r, f = prf_from_counts([3, 0, 2, 5], [125, 0, 0, 1], [1, 0, 2, 0])
    assert p.tolist() == [3 / (128 + 1e-9), 0.0, 2 / (2 + 1e-9), 5 / (6 + 1e-9)]
    assert r.tolist() == [3 / (4 + 1e-9), 0.0, 2 / (4 + 1e-9), 5 / (5 + 1e-9)]
    assert f.tolist() == [2 * a * b / (a + b + 1e-9) for a, b in zip(p.tolist(), r.tolist(), strict=True)]
    assert round(float(p[0]), 6) == 0.023437  # exact division would report 0.023438
    assert round(float(f[2]), 6) == 0.666667 and round(float(f[3]), 6) == 0.909091
    assert f1_from_counts(np.array([3, 2]), np.array([125, 0]), np.array([1, 2])).tolist() == [f[0], f[2]]


def test_percentile_ci_default_level_is_95_and_columns_are_independent():
    samples = np.stack([np.arange(2000.0), -np.arange(2000.0), np.full(2000, 4.0)], axis=1)
    lo, hi = percentile_ci(samples)
    assert lo.tolist() == [50.0, -1949.0, 4.0] and hi.tolist() == [1949.0, -50.0, 4.0]
    lo, hi = percentile_ci(np.arange(40.0)[:, None], 0.9)  # 40 * (1 - 0.9) / 2 is 1.9999999999999996 in floats
    assert (lo[0], hi[0]) == (2.0, 37.0)


def test_two_sided_p_counts_replicates_at_least_as_far_from_the_observed_delta():
    # column 0: Δ = 1; |Δ* − Δ| = 3, 1, 0, 2, 1: four are ≥ 1 (ties count) -> (1 + 4) / 6
    # column 1: Δ = 0.1 + 0.2; Δ* = 0.6 is |Δ| away up to rounding (0.29999999999999993), so it counts
    # column 2: Δ = 0: every replicate counts -> p = 1
    samples = np.array([[-2.0, 0.6, 5.0], [0.0, 0.3, -1.0], [1.0, 0.3, 0.0], [3.0, 0.3, 2.0], [2.0, 0.3, 0.5]])
    p = two_sided_p(samples, np.array([1.0, 0.1 + 0.2, 0.0]))
    assert p.tolist() == [5 / 6, 2 / 6, 1.0]


def test_one_sided_p_counts_replicates_at_the_allowance_within_rounding():
    # column 0: max_drop 1, Δ* ≥ −1: −1 (tie) and 0 -> (1 + 2) / 5; column 1: max_drop 0.3,
    # Δ* = −(0.1 + 0.2) is −0.30000000000000004, at the allowance up to rounding -> (1 + 1) / 5
    samples = np.array([[-5.0, -0.5], [-1.0, -(0.1 + 0.2)], [0.0, -1.0], [-1.5, -2.0]])
    p = one_sided_drop_p(samples, np.array([1.0, 0.3]))
    assert p.tolist() == [3 / 5, 2 / 5]


def test_holm_caps_at_one_keeps_monotone_and_handles_no_tags():
    assert holm(np.array([0.6, 0.9])).tolist() == [1.0, 1.0]  # 2 x 0.6 = 1.2, capped
    assert holm(np.array([0.02, 0.01, 0.2])).tolist() == pytest.approx([0.04, 0.03, 0.2])
    assert holm(np.array([0.04])).tolist() == [0.04]
    empty = holm(np.array([]))
    assert isinstance(empty, np.ndarray) and empty.size == 0
