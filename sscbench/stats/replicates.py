"""Statistics over replicates: pure functions of [R, N] arrays, scipy underneath.

What it is: the decision rule of a replicated comparison (Bouthillier et al.
2021, "Accounting for Variance in Machine Learning Benchmarks"). Each
replicate r re-draws the data, the tuning run and the model seeds; an arm's
score in replicate r is its mean test accuracy over the replicate's N seeds,
and arm A is compared with reference B on the paired per-replicate
differences d_r = score_A,r - score_B,r:

- ``mean_diff`` with a bootstrap CI over replicates, and a two-level bootstrap
  CI (replicates, then seeds within each replicate, seeds paired across arms);
- ``p_outperform``: P(A > B), the share of replicates A wins (ties one half),
  with a Wilson score interval;
- ``p_ttest``: the paired t-test over replicates;
- ``verdict``: "better" / "worse" only when the t-test rejects at alpha, the
  P(A > B) interval excludes 0.5 and P(A > B) >= gamma (<= 1 - gamma);
  otherwise "equivalent" when the two one-sided tests at the margin both reject
  (the 1 - 2 alpha t-interval lies inside (-margin, +margin)), else
  "inconclusive" (files written before the margin say "no detectable difference");
- ``sequential``: the decision of ``compare --replicates auto``
  (``sscbench.stats.sequential``), when the comparison was run that way;
- ``replicates_for_power`` and the share of the seed-level difference's
  variance that lies between replicates (data + tuning) and within them (seeds).

What it is not: aware of training, files or plugins. NaN marks a seed that
diverged; it is left out of its arm's score.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict

from sscbench.stats import paired as stats
from sscbench.stats.sequential import Sequential

GAMMA = 0.75  # Bouthillier et al.'s threshold for a meaningful P(A > B)
MARGIN_POINTS = 0.5  # the default equivalence margin, in accuracy points
TWO_LEVEL_RESAMPLES = 10_000


class ReplicatedComparison(BaseModel):
    """Arm A against reference B over paired replicates; positive differences favour A."""

    model_config = ConfigDict(frozen=True)
    arm: str
    reference: str
    replicates: int
    seeds_per_replicate: int
    diffs: list[float]
    mean_diff: float
    ci_low: float | None  # None where undefined (a single replicate)
    ci_high: float | None
    ci_method: str
    ci_two_level_low: float | None
    ci_two_level_high: float | None
    ci_resamples: int
    p_outperform: float
    p_outperform_ci_low: float
    p_outperform_ci_high: float
    p_outperform_ci_method: str
    p_ttest: float | None
    alpha: float
    gamma: float
    verdict: str
    replicates_for_power: int | None
    variance_replicates: float | None
    variance_seeds: float | None
    variance_share_replicates: float | None
    variance_share_seeds: float | None
    margin: float | None = None  # in the unit of diffs; None in files written before the margin
    rule: str | None = None  # how the verdict was reached, in words
    replicate_indices: list[int] | None = None  # the replicate behind each of diffs
    left_out: list[str] = []  # replicates not in diffs, and why
    after_stop: list[float] = []  # differences of replicates finished past the sequential stop (not used)
    sequential: Sequential | None = None


def scores(acc: np.ndarray) -> np.ndarray:
    """Per-replicate score: the mean over the finite seeds of each row of [R, N] (NaN if none)."""
    acc = np.asarray(acc, dtype=float)
    finite = np.isfinite(acc)
    count = finite.sum(1)
    total = np.where(finite, acc, 0.0).sum(1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def p_outperform(a: np.ndarray, b: np.ndarray) -> float:
    """P(A > B) over paired replicate scores: share of wins, ties counting one half."""
    return stats.prob_improvement(a, b)


def wilson_interval(p: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion p observed over n trials (p may be fractional: ties).

    Unlike a percentile bootstrap it does not collapse to [1, 1] when A wins every replicate.
    """
    if n <= 0:
        return math.nan, math.nan
    z = float(stats._scipy().norm.ppf(0.5 + level / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_level_bootstrap_ci(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = TWO_LEVEL_RESAMPLES,
                           level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of mean_r(score_A,r - score_B,r) resampling replicates, then seeds within each.

    ``a`` and ``b`` are [R, N] per-seed accuracies; the same resampled seed indices are used for
    both arms (seed s pairs them). Resamples where an arm has no finite seed left are dropped.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    R, N = a.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, R, size=(resamples, R, 1))
    cols = rng.integers(0, N, size=(resamples, R, N))
    with np.errstate(all="ignore"):
        d = scores(a[rows, cols].reshape(-1, N)) - scores(b[rows, cols].reshape(-1, N))
    means = d.reshape(resamples, R).mean(1)
    means = means[np.isfinite(means)]
    if means.size == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def variance_components(d: np.ndarray) -> tuple[float, float] | None:
    """One-way random-effects ANOVA of seed-level differences d [R, N] (NaN: left out).

    Returns (between-replicate variance, within-replicate variance), method-of-moments
    estimates with the usual n0 for unequal group sizes, the between part clipped at 0.
    None when there are fewer than 2 replicates or no replicate with 2 finite seeds.
    """
    groups = [row[np.isfinite(row)] for row in np.asarray(d, dtype=float)]
    groups = [g for g in groups if g.size]
    k, n_total = len(groups), sum(g.size for g in groups)
    if k < 2 or n_total - k < 1:
        return None
    grand = np.concatenate(groups).mean()
    ss_between = sum(g.size * (g.mean() - grand) ** 2 for g in groups)
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    ms_between, ms_within = ss_between / (k - 1), ss_within / (n_total - k)
    n0 = (n_total - sum(g.size ** 2 for g in groups) / n_total) / (k - 1)
    return float(max(0.0, (ms_between - ms_within) / n0)), float(ms_within)


def equivalent(diffs: np.ndarray, margin: float, alpha: float = stats.ALPHA) -> bool:
    """Two one-sided t-tests at the margin both reject: the 1 - 2 alpha t-interval lies inside (-margin, margin).

    Constant differences (sd 0) are equivalent when their value lies inside; a single one never is.
    """
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return False
    half = float(stats._scipy().t.ppf(1 - alpha, d.size - 1)) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return bool(-margin < d.mean() - half and d.mean() + half < margin)


def verdict(mean_diff: float, p_ttest: float, p_out: float, p_low: float, p_high: float,
            alpha: float = stats.ALPHA, gamma: float = GAMMA, equivalent: bool = False) -> str:
    """'better' / 'worse' only when the difference is both significant and meaningful; else
    'equivalent' when the equivalence tests at the margin reject (``equivalent``), else 'inconclusive'."""
    significant = math.isfinite(p_ttest) and p_ttest < alpha
    if significant and mean_diff > 0 and p_low > 0.5 and p_out >= gamma:
        return "better"
    if significant and mean_diff < 0 and p_high < 0.5 and p_out <= 1 - gamma:
        return "worse"
    return "equivalent" if equivalent else "inconclusive"


def fixed_rule(margin_points: float, alpha: float = stats.ALPHA, gamma: float = GAMMA) -> str:
    return (f"fixed replicates: better / worse when the paired t-test rejects at {alpha:g}, the P(A > B) interval "
            f"excludes 0.5 and P(A > B) >= {gamma:g} (<= {1 - gamma:g}); equivalent when both one-sided tests "
            f"at ±{margin_points:g} points reject at {alpha:g}; else inconclusive")


def compare(arm: str, a: np.ndarray, reference: str, b: np.ndarray, seed: int = 0,
            resamples: int = stats.BOOTSTRAP_RESAMPLES, alpha: float = stats.ALPHA,
            gamma: float = GAMMA, margin_points: float = MARGIN_POINTS,
            indices: list[int] | None = None) -> ReplicatedComparison:
    """A against reference B; a[r, s] and b[r, s] share replicate r's data and model seed s.

    Replicates where either arm has no finite seed are left out. Accuracies are fractions, so the
    margin in points becomes ``margin_points / 100`` in the unit of the differences.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"replicated comparison needs two equal [R, N] arrays, got {a.shape} and {b.shape}")
    sa, sb = scores(a), scores(b)
    keep = np.isfinite(sa) & np.isfinite(sb)
    indices = list(range(a.shape[0])) if indices is None else list(indices)
    left_out = [f"replicate {r}: every seed of '{arm if not np.isfinite(x) else reference}' diverged"
                for r, x, k in zip(indices, sa, keep, strict=True) if not k]
    a, b, sa, sb = a[keep], b[keep], sa[keep], sb[keep]
    if not keep.any():
        raise ValueError(f"no replicate where both '{arm}' and '{reference}' have a finite score")
    diffs = sa - sb
    low, high, method = stats.bootstrap_mean_ci(diffs, seed, resamples)
    low2, high2 = two_level_bootstrap_ci(a, b, seed, resamples)
    p_out = p_outperform(sa, sb)
    p_low, p_high = wilson_interval(p_out, diffs.size)
    p_t = stats.paired_ttest_p(diffs)
    components = variance_components(a - b)
    between, within = components if components else (None, None)
    total = None if components is None else between + within
    return ReplicatedComparison(
        arm=arm, reference=reference, replicates=int(diffs.size), seeds_per_replicate=int(a.shape[1]),
        diffs=[float(x) for x in diffs], mean_diff=float(diffs.mean()), ci_low=stats.finite(low),
        ci_high=stats.finite(high), ci_method=method, ci_two_level_low=stats.finite(low2),
        ci_two_level_high=stats.finite(high2), ci_resamples=resamples,
        p_outperform=p_out, p_outperform_ci_low=p_low, p_outperform_ci_high=p_high,
        p_outperform_ci_method="wilson", p_ttest=stats.finite(p_t), alpha=alpha, gamma=gamma,
        verdict=verdict(float(diffs.mean()), p_t, p_out, p_low, p_high, alpha, gamma,
                        equivalent(diffs, margin_points / 100, alpha)),
        margin=margin_points / 100, rule=fixed_rule(margin_points, alpha, gamma),
        replicate_indices=[r for r, k in zip(indices, keep, strict=True) if k], left_out=left_out,
        replicates_for_power=stats.seeds_for_power(diffs, alpha=alpha),
        variance_replicates=between, variance_seeds=within,
        variance_share_replicates=None if not total else between / total,
        variance_share_seeds=None if not total else within / total,
    )
