"""Replicate-level statistics against hand-worked cases and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sscbench.stats import paired as stats
from sscbench.stats import replicates as rs

NAN = math.nan


def test_scores_are_means_over_finite_seeds():
    acc = np.array([[0.7, NAN, 0.8], [NAN, NAN, NAN], [0.5, 0.6, 0.7]])
    got = rs.scores(acc)
    assert got[0] == pytest.approx(0.75) and math.isnan(got[1]) and got[2] == pytest.approx(0.6)


def test_p_outperform_hand_worked_with_a_tie():
    # wins, tie, loss, win: (1 + 0.5 + 0 + 1) / 4
    assert rs.p_outperform(np.array([1.0, 2, 3, 4]), np.array([0.0, 2, 5, 1])) == 0.625


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (7, 10), (10, 10), (1, 2), (15, 20)])
def test_wilson_interval_matches_scipy(k, n):
    low, high = rs.wilson_interval(k / n, n)
    ci = sps.binomtest(k, n).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_interval_hand_worked_all_wins():
    # p = 1, n = 10: centre (1 + z^2/20) / (1 + z^2/10), half-width z^2/20 / (1 + z^2/10)
    z = 1.959963984540054
    low, high = rs.wilson_interval(1.0, 10)
    assert low == pytest.approx(1 / (1 + z * z / 10), rel=1e-12)  # centre - half-width
    assert low == pytest.approx(0.722467, abs=1e-6) and high == pytest.approx(1.0, abs=1e-15)


def test_variance_components_balanced_hand_worked():
    # groups [1, 3], [5, 7]: MS_between = 16, MS_within = 2, n0 = 2 -> between (16 - 2) / 2 = 7
    assert rs.variance_components(np.array([[1.0, 3.0], [5.0, 7.0]])) == pytest.approx((7.0, 2.0))


def test_variance_components_unbalanced_hand_worked():
    # groups [1], [2, 4]: MS_between = 8/3, MS_within = 2, n0 = (3 - 5/3) / 1 = 4/3 -> (8/3 - 2) / (4/3)
    assert rs.variance_components(np.array([[1.0, NAN], [2.0, 4.0]])) == pytest.approx((0.5, 2.0))


def test_variance_components_recover_a_known_split():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 1.0, (400, 1)) + rng.normal(0, 2.0, (400, 8))  # between 1, within 4
    between, within = rs.variance_components(d)
    assert between == pytest.approx(1.0, rel=0.2) and within == pytest.approx(4.0, rel=0.05)


def test_variance_components_undefined_cases():
    assert rs.variance_components(np.array([[1.0, 2.0]])) is None  # one replicate
    assert rs.variance_components(np.array([[1.0], [2.0]])) is None  # no seed-level spread to estimate


@pytest.mark.parametrize(("mean", "p_t", "p_out", "low", "high", "expected"), [
    (0.01, 0.01, 0.9, 0.6, 0.98, "better"),
    (-0.01, 0.01, 0.1, 0.02, 0.4, "worse"),
    (0.01, 0.06, 0.9, 0.6, 0.98, "inconclusive"),  # not significant
    (0.01, 0.01, 0.7, 0.6, 0.8, "inconclusive"),  # P(A > B) below gamma
    (0.01, 0.01, 0.8, 0.45, 0.95, "inconclusive"),  # interval includes 0.5
    (-0.01, 0.01, 0.8, 0.6, 0.9, "inconclusive"),  # directions disagree
])
def test_verdict_needs_significance_and_meaning(mean, p_t, p_out, low, high, expected):
    assert rs.verdict(mean, p_t, p_out, low, high) == expected


def _arms(rng: np.random.Generator, shift: float, r: int = 8, n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rep = rng.normal(0.74, 0.01, (r, 1))  # data + tuning: shared by both arms of a replicate
    b = rep + rng.normal(0, 0.005, (r, n))
    a = rep + shift + rng.normal(0, 0.005, (r, n)) + rng.normal(0, 0.003, (r, 1))
    return a, b


def test_compare_agrees_with_scipy_on_the_replicate_scores():
    a, b = _arms(np.random.default_rng(3), 0.004)
    c = rs.compare("a", a, "b", b)
    sa, sb = a.mean(1), b.mean(1)
    assert c.diffs == pytest.approx(list(sa - sb), abs=1e-15)
    assert c.mean_diff == pytest.approx((sa - sb).mean(), abs=1e-15)
    assert c.p_ttest == pytest.approx(sps.ttest_rel(sa, sb).pvalue, rel=1e-12)
    boot = sps.bootstrap((sa - sb,), np.mean, n_resamples=stats.BOOTSTRAP_RESAMPLES, method="BCa",
                         rng=np.random.default_rng(0)).confidence_interval
    assert (c.ci_low, c.ci_high) == pytest.approx((boot.low, boot.high))
    assert c.p_outperform == np.mean(sa > sb)
    assert c.replicates_for_power == stats.seeds_for_power(sa - sb)
    assert c.replicates == 8 and c.seeds_per_replicate == 4
    assert c.variance_share_replicates + c.variance_share_seeds == pytest.approx(1.0)


def test_a_clear_gain_is_called_better_and_its_mirror_worse():
    a, b = _arms(np.random.default_rng(4), 0.03, r=10)
    assert rs.compare("a", a, "b", b).verdict == "better"
    assert rs.compare("b", b, "a", a).verdict == "worse"


def test_identical_arms_are_equivalent_at_any_margin():
    a, _ = _arms(np.random.default_rng(5), 0.0)
    c = rs.compare("a", a, "a2", a.copy())
    assert c.verdict == "equivalent" and c.p_outperform == 0.5 and c.mean_diff == 0
    assert (c.ci_two_level_low, c.ci_two_level_high) == (0.0, 0.0)
    assert c.margin == 0.005 and "±0.5 points" in c.rule and c.left_out == []
    assert rs.compare("a", a, "a2", a.copy(), margin_points=1e-6).verdict == "equivalent"


def test_equivalence_is_the_two_one_sided_tests_at_the_margin():
    d = np.array([0.1, -0.2, 0.3, 0.0, -0.1])  # mean 0.02, sd 0.192, t_4(0.95) = 2.1318
    half = 2.131846786 * np.std(d, ddof=1) / np.sqrt(5)  # 0.1832: the 90% interval is [-0.163, 0.203]
    assert rs.equivalent(d, 0.21) and not rs.equivalent(d, 0.2)
    assert rs.equivalent(d, 0.02 + half + 1e-9) and not rs.equivalent(d, 0.02 + half - 1e-9)
    assert not rs.equivalent(np.array([0.0]), 1.0)  # one replicate shows nothing
    assert rs.equivalent(np.zeros(3), 1e-12) and not rs.equivalent(np.full(3, 0.5), 0.5)


def test_a_null_result_is_equivalent_at_a_wide_margin_and_inconclusive_at_a_narrow_one():
    a, b = _arms(np.random.default_rng(7), 0.0, r=10)
    wide, narrow = rs.compare("a", a, "b", b, margin_points=50), rs.compare("a", a, "b", b, margin_points=0.001)
    assert (wide.verdict, narrow.verdict) == ("equivalent", "inconclusive")


def test_a_replicate_where_an_arm_diverged_is_left_out_and_named():
    a, b = _arms(np.random.default_rng(8), 0.0, r=4)
    a[2] = np.nan
    c = rs.compare("a", a, "b", b, indices=[10, 11, 12, 13])
    assert c.replicate_indices == [10, 11, 13] and c.replicates == 3
    assert c.left_out == ["replicate 12: every seed of 'a' diverged"]


def test_two_level_interval_widens_with_seed_noise():
    rng = np.random.default_rng(6)
    rep = rng.normal(0.01, 0.002, (10, 1))
    quiet = rs.two_level_bootstrap_ci(rep + np.zeros((10, 5)), np.zeros((10, 5)))
    noisy = rs.two_level_bootstrap_ci(rep + rng.normal(0, 0.02, (10, 5)), np.zeros((10, 5)))
    assert noisy[1] - noisy[0] > 2 * (quiet[1] - quiet[0])
    # without seed noise the two-level bootstrap is a percentile bootstrap of the replicate means
    one = sps.bootstrap((rep[:, 0],), np.mean, n_resamples=10_000, method="percentile",
                        rng=np.random.default_rng(1)).confidence_interval
    assert quiet == pytest.approx((one.low, one.high), abs=3e-4)


def test_diverged_seeds_and_empty_replicates_are_left_out():
    a, b = _arms(np.random.default_rng(7), 0.01, r=5, n=3)
    a[0, 1] = NAN  # one seed diverged: the replicate scores over the other two
    a[2, :] = NAN  # every seed diverged: the replicate has no score and leaves the comparison
    c = rs.compare("a", a, "b", b)
    keep = [0, 1, 3, 4]
    assert c.replicates == 4
    assert c.diffs == pytest.approx(list(np.nanmean(a[keep], 1) - b[keep].mean(1)), abs=1e-15)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="equal"):
        rs.compare("a", np.zeros((3, 2)), "b", np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no replicate"):
        rs.compare("a", np.full((2, 2), NAN), "b", np.zeros((2, 2)))
