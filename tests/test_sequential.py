"""The sequential rule of ``compare --replicates auto``: hand-worked cases, calibration, error rates, edges."""

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from sscbench.stats import sequential as sq


def _rule(diffs, **kw):
    return sq.sequential(diffs, **({"min_n": 3, "max_n": 6, "margin": 0.1} | kw))


def test_the_calibrated_level_matches_the_published_constant():
    p = sq.calibrate_p_star(5, 40, 0.05)
    assert 0.0062 < p < 0.0070  # Jennison & Turnbull's Pocock-type RCI, about 0.0066
    assert sq.critical_value(10, p) == pytest.approx(3.5, abs=0.05)
    assert sq.critical_value(40, p) == pytest.approx(2.9, abs=0.05)


def test_the_calibrated_intervals_cover_together_at_the_stated_rate():
    """On fresh paths (another seed), the share where some interval misses the true mean is alpha."""
    p = sq.calibrate_p_star(5, 20, 0.05)
    rng = np.random.default_rng(99)
    d = rng.normal(0.3, 2.0, (20_000, 20))  # any mean and scale: the t-statistic is pivotal
    missed = np.zeros(len(d), dtype=bool)
    for n in range(5, 21):
        mean, sd = d[:, :n].mean(1), d[:, :n].std(1, ddof=1)
        half = sq.critical_value(n, p) * sd / math.sqrt(n)
        missed |= np.abs(mean - 0.3) > half
    error = math.sqrt(0.05 * 0.95 / len(d))
    assert abs(missed.mean() - 0.05) < 4 * error


def test_a_hand_worked_sequence():
    # n = 3: mean 2, sd 1, c = t_2(0.975) = 4.302653, half 2.4841: [-0.4841, 4.4841], no decision.
    # n = 4: mean 2, sd 0.8165, c = t_3(0.975) = 3.182446, half 1.2992: [0.7008, 3.2992], better.
    r = _rule([1, 2, 3, 2, -50], p_star=0.05)
    assert (r.decision, r.replicates_used) == ("better", 4)
    assert [look.n for look in r.looks] == [3, 4]
    assert r.looks[0].rci_low == pytest.approx(-0.48414, abs=1e-4)
    assert r.looks[0].rci_high == pytest.approx(4.48414, abs=1e-4)
    assert (r.rci_low, r.rci_high) == (pytest.approx(0.70083, abs=1e-4), pytest.approx(3.29917, abs=1e-4))
    assert r.mean_diff == 2 and r.p_outperform == 1.0 and r.meaningful is True


def test_the_mirror_is_worse_and_a_tight_null_is_equivalent():
    assert _rule([-1, -2, -3, -2], p_star=0.05).decision == "worse"
    # mean 0, sd 0.01, c = 4.3027: half 0.0248 inside the margin 0.1 at the first look
    r = _rule([0.01, -0.01, 0.0], p_star=0.05)
    assert (r.decision, r.replicates_used, r.within_margin) == ("equivalent", 3, True)
    assert _rule([0.01, -0.01, 0.0], p_star=0.05, margin=0.02).decision is None  # still open


def test_better_takes_precedence_and_says_it_lies_inside_the_margin():
    r = _rule([0.05, 0.05, 0.05], p_star=0.05)  # sd 0: [0.05, 0.05], above 0 and inside ±0.1
    assert (r.decision, r.within_margin) == ("better", True)


def test_identical_arms_are_equivalent_at_the_first_look_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sq.sequential([0.0] * 5, min_n=5, max_n=40, margin=0.005)
    assert (r.decision, r.replicates_used, r.rci_low, r.rci_high) == ("equivalent", 5, 0.0, 0.0)
    assert r.sign_test.decision is None and r.agrees_with_sign_test is True


def test_open_until_the_maximum_then_inconclusive():
    noisy = [1, -1, 2, -2, 1, -1]
    assert _rule(noisy[:4], p_star=0.05).decision is None  # open: more replicates may come
    assert _rule(noisy[:4], p_star=0.05, complete=True).decision == "inconclusive"
    r = _rule(noisy, p_star=0.05)
    assert (r.decision, r.replicates_used) == ("inconclusive", 6)
    single = _rule([0.3], p_star=0.05)
    assert single.decision is None and single.looks == [] and single.rci_low is None


def test_replicates_past_the_stop_do_not_change_the_answer():
    d = [1, 2, 3, 2]
    first = _rule(d, p_star=0.05)
    for extra in ([9.0], [-100.0, 3.0]):
        assert _rule(d + extra, p_star=0.05) == first


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="finite"):
        _rule([0.1, float("nan"), 0.2])
    with pytest.raises(ValueError, match="at least 2"):
        sq.sequential([0.1], min_n=1, max_n=3, margin=0.1)
    with pytest.raises(ValueError, match="max replicates"):
        sq.sequential([0.1], min_n=5, max_n=3, margin=0.1)
    with pytest.raises(ValueError, match="margin"):
        sq.sequential([0.1], min_n=3, max_n=5, margin=0)


def test_huge_differences_give_finite_intervals():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = _rule([1e300, -1e300, 5e299, 1e300], p_star=0.05)
    assert all(math.isfinite(v) for look in r.looks for v in (look.mean_diff, look.rci_low, look.rci_high))


def test_bonferroni_splits_alpha_and_widens_the_interval():
    d = [0.4, 0.6, 0.5, 0.7, 0.3]
    one, six = (sq.sequential(d, min_n=5, max_n=40, margin=0.1, comparisons=k) for k in (1, 6))
    assert six.alpha_per_comparison == pytest.approx(0.05 / 6) and six.p_star < one.p_star
    assert six.rci_high - six.rci_low > one.rci_high - one.rci_low
    assert "split over 6 comparisons" in six.rule


def test_a_run_that_ends_between_looks_takes_a_last_look_at_what_it_has():
    d = [0.1, -0.2, 0.3, 0.0, -0.1, 0.2, 0.1]  # 7 differences, looks every 3 from 3: 3, 6, (9)
    assert [look.n for look in _rule(d, batch=3, max_n=9, p_star=0.05).looks] == [3, 6]
    ended = _rule(d, batch=3, max_n=9, p_star=0.05, complete=True)
    assert [look.n for look in ended.looks] == [3, 6, 7] and ended.decision == "inconclusive"


def test_batched_looks_are_taken_every_batch_and_at_the_maximum():
    assert sq.look_points(5, 40, 1) == list(range(5, 41))
    assert sq.look_points(5, 20, 4) == [5, 9, 13, 17, 20]
    r = sq.sequential([0.1, -0.2, 0.3, 0.0, -0.1, 0.2, 0.1, 0.0, 0.05], min_n=3, max_n=9, margin=0.01, batch=3,
                      p_star=0.05)
    assert [look.n for look in r.looks] == [3, 6, 9]


def test_the_sign_test_level_is_exact():
    """The dynamic programme's crossing probability equals a brute-force count over every win/loss sequence."""
    min_n, max_n, alpha = 4, 10, 0.1
    level = sq.sign_level(min_n, max_n, alpha)
    binom = scipy_stats.binomtest

    def rejects(seq, lvl):
        return any(binom(sum(seq[:n]), n).pvalue <= lvl + 1e-12 for n in range(min_n, max_n + 1))

    paths = list(itertools.product([0, 1], repeat=max_n))
    crossing = sum(rejects(p, level) for p in paths) / len(paths)
    assert crossing == pytest.approx(sq._sign_crossing(level, range(min_n, max_n + 1)))
    assert 0 < crossing <= alpha
    next_level = min(v for v in {binom(w, n).pvalue for n in range(min_n, max_n + 1) for w in range(n + 1)}
                     if v > level + 1e-12)
    assert sum(rejects(p, next_level) for p in paths) / len(paths) > alpha  # the largest level that holds


def test_the_sign_test_rides_along_and_a_disagreement_is_flagged():
    level = sq.sign_level(5, 40, 0.05)
    wins = sq.sequential([0.01, 1.0, 0.02, 0.9, 0.05, 1.1, 0.03, 0.95] * 4, min_n=5, max_n=40, margin=0.01)
    assert wins.decision == "better" and wins.sign_test.decision == "better"
    assert wins.sign_test.n <= wins.replicates_used and wins.agrees_with_sign_test is True
    assert wins.sign_test.earliest == min(n for n in range(5, 41) if 2 * 0.5 ** n <= level)
    # a few large gains and many small losses: the mean says better, the wins do not
    d = [3.0, -0.1, 3.2, -0.1, 2.9, -0.1, 3.1, -0.1, 3.0, -0.1, 3.1, -0.1] * 2
    r = sq.sequential(d, min_n=5, max_n=40, margin=0.01)
    assert r.decision == "better" and r.sign_test.decision is None and r.agrees_with_sign_test is False
    early = sq.sequential([-0.5, -0.51, -0.49], min_n=3, max_n=6, margin=0.005)
    assert early.decision == "worse" and early.agrees_with_sign_test is None  # 3 replicates: no sign test yet


def test_the_vectorised_simulation_is_the_rule():
    decisions, used = sq.simulate(0.5, min_n=5, max_n=15, margin=0.3, paths=40, seed=3)
    d = np.random.default_rng(3).normal(0.5, 1.0, (40, 15))
    p = sq.calibrate_p_star(5, 15, 0.05)
    for k in range(40):
        r = sq.sequential(d[k], min_n=5, max_n=15, margin=0.3, p_star=p)
        assert (r.decision, r.replicates_used) == (decisions[k], used[k])


def test_simulated_error_rates_under_no_difference_stay_within_alpha():
    paths = 6_000
    decisions, _ = sq.simulate(0.0, min_n=5, max_n=40, margin=1e-9, paths=paths, seed=11)
    error = math.sqrt(0.025 * 0.975 / paths)
    for side in ("better", "worse"):
        assert (decisions == side).mean() <= 0.025 + 3 * error


def test_a_difference_of_two_sd_is_found_better_by_twelve_replicates():
    decisions, used = sq.simulate(2.0, min_n=5, max_n=40, margin=0.25, paths=4_000, seed=12)
    assert ((decisions == "better") & (used <= 12)).mean() >= 0.90


def test_a_difference_at_the_margin_is_rarely_called_equivalent():
    decisions, _ = sq.simulate(0.5, min_n=5, max_n=40, margin=0.5, paths=6_000, seed=13)
    assert (decisions == "equivalent").mean() <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / 6_000)


def test_fixed_design_size_matches_the_t_power():
    assert sq.fixed_n_for(1.0, 0.05, 0.8) == 10  # the textbook paired t-test: d = 1, 80% power
    assert sq.fixed_n_for(0.5, 0.05, 0.8) == 34


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=0, max_size=12))
def test_the_decision_is_a_pure_function_of_the_prefix_it_used(d):
    r = _rule(d, p_star=0.05)
    assert r.decision in (None, *sq.DECISIONS)
    if r.decision is not None:
        assert _rule(d[:r.replicates_used], p_star=0.05) == r
