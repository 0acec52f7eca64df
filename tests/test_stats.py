"""Statistics against hand-worked cases, published power tables and scipy's own outputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sscbench.stats import paired as stats


def test_paired_ttest_hand_worked():
    # d = [1, 2, 3]: mean 2, sd 1, t = 2 sqrt(3); df 2 has F(t) = 1/2 + t / (2 sqrt(2 + t^2))
    t = 2 * math.sqrt(3)
    expected = 2 * (1 - (0.5 + t / (2 * math.sqrt(2 + t * t))))
    assert stats.paired_ttest_p(np.array([1.0, 2.0, 3.0])) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.0741799, abs=1e-6)


def test_paired_ttest_matches_scipy_ttest_rel():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.74, 0.01, 7), rng.normal(0.745, 0.01, 7)
    assert stats.compare("a", a, "b", b).p_ttest == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)


def test_wilcoxon_exact_hand_worked():
    # three positive differences: W+ = 6 is the most extreme of 2^3 sign patterns -> p = 2/8
    assert stats.wilcoxon_p(np.array([0.1, 0.2, 0.3])) == pytest.approx(0.25)
    # five seeds can never reach 0.05: the smallest two-sided exact p is 2/32
    assert stats.wilcoxon_p(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(0.0625)
    assert stats.wilcoxon_p(np.zeros(5)) == 1.0


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=9), rng.normal(size=9)
    assert stats.compare("a", a, "b", b).p_wilcoxon == pytest.approx(sps.wilcoxon(a, b).pvalue)


def test_hedges_g_paired_hand_worked():
    # d_z = 2 / 1, J = 1 - 3 / (4 * 2 - 1) = 4/7
    assert stats.hedges_g_paired(np.array([1.0, 2.0, 3.0])) == pytest.approx(8 / 7)
    assert stats.hedges_g_paired(np.array([1.0, 1.0, 1.0])) is None
    assert stats.hedges_g_paired(np.array([1.0, 2.0])) is None


def test_prob_improvement_counts_ties_half():
    assert stats.prob_improvement(np.array([1.0, 2, 3]), np.array([1.0, 1, 4])) == pytest.approx(0.5)
    assert stats.prob_improvement(np.array([2.0, 3]), np.array([1.0, 1])) == 1.0


@pytest.mark.parametrize("effect,n", [(0.5, 34), (0.8, 15), (1.0, 10)])
def test_seeds_for_power_matches_published_tables(effect, n):
    # G*Power, "means: difference from constant (matched pairs)", two-tailed alpha 0.05, power 0.8
    x = np.array([1.0, -1.0]) / np.array([1.0, -1.0]).std(ddof=1)
    assert stats.seeds_for_power(effect + x) == n


def test_power_agrees_with_monte_carlo():
    rng = np.random.default_rng(0)
    n, effect, reps = 8, 1.0, 4000
    samples = rng.normal(effect, 1.0, size=(reps, n))
    rejected = sps.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05
    assert stats.paired_ttest_power(effect, n) == pytest.approx(rejected.mean(), abs=0.03)


def test_seeds_for_power_undefined_cases():
    assert stats.seeds_for_power(np.zeros(5)) is None
    assert stats.seeds_for_power(np.array([1e-9, -1e-9, 2e-9, -2e-9, 1e-12])) is None  # needs > 100000


def test_bootstrap_ci_is_scipys_and_covers_the_mean():
    values = np.array([0.731, 0.745, 0.752, 0.738, 0.760])
    low, high, method = stats.bootstrap_mean_ci(values, seed=3, resamples=5000)
    ref = sps.bootstrap((values,), np.mean, n_resamples=5000, method="BCa",
                        rng=np.random.default_rng(3)).confidence_interval
    assert (low, high, method) == (pytest.approx(ref.low), pytest.approx(ref.high), "BCa")
    assert values.min() <= low < values.mean() < high <= values.max()
    assert stats.bootstrap_mean_ci(np.full(4, 0.7)) == (0.7, 0.7, "degenerate")


def test_summary():
    s = stats.summarize(np.array([1.0, 2.0, 3.0, 10.0]))
    assert (s.mean, s.median, s.n) == (4.0, 2.5, 4)
    assert s.std == pytest.approx(np.std([1, 2, 3, 10])) and s.std_ddof1 == pytest.approx(np.std([1, 2, 3, 10], ddof=1))


def test_verdicts():
    high, low = np.array([0.80, 0.81, 0.82, 0.805, 0.815]), np.array([0.70, 0.70, 0.71, 0.70, 0.71])
    better = stats.compare("a", high, "b", low)
    assert better.verdict == "better" and better.p_ttest < 0.05 and better.ci_low > 0
    worse = stats.compare("b", low, "a", high)
    assert worse.verdict == "worse" and worse.mean_diff < 0
    same = np.array([0.74, 0.75, 0.73, 0.76, 0.745])
    identical = stats.compare("a", same, "b", same.copy())
    assert identical.verdict == "no detectable difference" and identical.p_ttest == 1.0
    assert (identical.mean_diff, identical.ci_low, identical.ci_high) == (0.0, 0.0, 0.0)
    noisy = stats.compare("a", same, "b", same[::-1])
    assert noisy.verdict == "no detectable difference"


def test_compare_refuses_unpaired_input():
    with pytest.raises(ValueError, match="equal-length"):
        stats.compare("a", np.ones(3), "b", np.ones(4))
