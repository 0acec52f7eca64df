"""Statistics of per-seed results: pure functions of arrays, scipy underneath.

What it is: a per-arm summary (mean, std, median, bootstrap CI of the mean)
and a paired comparison of two arms over the same seeds (mean difference with a
bootstrap CI, paired t-test, Wilcoxon signed-rank, Hedges' g for paired data,
P(A > B) over seed pairs, a plain-words verdict, and the number of seeds a
paired t-test would need to detect the observed effect with 80% power).
What it is not: aware of training, files or plugins.

Seeds pair the arms: seed s gives every arm the same initial weights and batch
order, so the comparison is on the differences d_s = a_s - b_s.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from pydantic import BaseModel, ConfigDict

ALPHA = 0.05
POWER = 0.8
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_METHOD = "BCa"
MAX_SEEDS_FOR_POWER = 100_000  # beyond this the effect is reported as undetectable (None)


class Summary(BaseModel):
    model_config = ConfigDict(frozen=True)
    n: int
    mean: float
    std: float  # ddof 0, as the seed reported
    std_ddof1: float | None
    median: float
    ci_low: float | None  # None where the bootstrap failed
    ci_high: float | None
    ci_method: str
    ci_resamples: int


class Comparison(BaseModel):
    """Arm A against reference arm B over paired seeds; positive differences favour A."""

    model_config = ConfigDict(frozen=True)
    arm: str
    reference: str
    n: int
    mean_diff: float
    ci_low: float | None  # None where undefined (JSON has no NaN)
    ci_high: float | None
    ci_method: str
    ci_resamples: int
    p_ttest: float | None  # None with a single seed
    p_wilcoxon: float
    hedges_g: float | None
    prob_improvement: float
    alpha: float
    verdict: str
    seeds_for_power: int | None


def finite(x: float) -> float | None:
    """x, or None where it is NaN or infinite (results files are JSON, which has neither)."""
    return float(x) if math.isfinite(x) else None


def bootstrap_mean_ci(values: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
                      level: float = 0.95) -> tuple[float, float, str]:
    """95% bootstrap CI of the mean (scipy.stats.bootstrap, BCa; percentile where BCa is undefined).

    A sample with no spread has the degenerate interval [mean, mean].
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2 or np.ptp(values) == 0:
        m = float(values.mean()) if values.size else math.nan
        return m, m, "degenerate"
    for method in (BOOTSTRAP_METHOD, "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa warns (and returns NaN) on tiny degenerate resamples
            res = _scipy().bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=level,
                                  method=method, rng=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high, method
    return math.nan, math.nan, "failed"


def summarize(values: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Summary:
    values = np.asarray(values, dtype=float)
    low, high, method = bootstrap_mean_ci(values, seed, resamples)
    return Summary(n=values.size, mean=float(values.mean()), std=float(values.std(ddof=0)),
                   std_ddof1=float(values.std(ddof=1)) if values.size > 1 else None,
                   median=float(np.median(values)), ci_low=finite(low), ci_high=finite(high), ci_method=method,
                   ci_resamples=resamples)


def hedges_g_paired(diffs: np.ndarray) -> float | None:
    """Hedges' g for paired data: mean(d) / sd(d, ddof=1) times J = 1 - 3 / (4 (n - 1) - 1).

    None when it is undefined (fewer than 3 pairs, or no spread in the differences).
    """
    diffs = np.asarray(diffs, dtype=float)
    n = diffs.size
    if n < 3:
        return None
    sd = diffs.std(ddof=1)
    if sd == 0:
        return None
    return float(diffs.mean() / sd * (1 - 3 / (4 * (n - 1) - 1)))


def prob_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of seed pairs where A beats B, ties counting one half."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.mean((a > b) + 0.5 * (a == b)))


def paired_ttest_p(diffs: np.ndarray) -> float:
    """Two-sided paired t-test p-value; 1.0 when every difference is the same zero."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size < 2 or np.ptp(diffs) == 0:
        return 1.0 if np.all(diffs == 0) else (0.0 if diffs.size >= 2 else math.nan)
    return float(_scipy().ttest_1samp(diffs, 0.0).pvalue)


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value (exact for small n); 1.0 when all differences are 0.

    With 5 seeds its smallest possible p is 0.0625: it cannot reject at 0.05.
    """
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size == 0 or np.all(diffs == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_scipy().wilcoxon(diffs).pvalue)


def _scipy():
    """scipy.stats, imported at first use: it takes about half a second, which every start of the
    command line would pay for commands that compute no statistic."""
    from scipy import stats

    return stats


def paired_ttest_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test with n pairs for standardised effect d_z."""
    if n < 2:
        return 0.0
    df = n - 1
    crit = _scipy().t.ppf(1 - alpha / 2, df)
    nc = abs(effect) * math.sqrt(n)
    return float(_scipy().nct.sf(crit, df, nc) + _scipy().nct.cdf(-crit, df, nc))


def seeds_for_power(diffs: np.ndarray, power: float = POWER, alpha: float = ALPHA) -> int | None:
    """Smallest number of seeds whose paired t-test detects the observed d_z with the given power.

    d_z = mean(d) / sd(d, ddof=1), the observed effect (no small-sample correction).
    None when the effect is zero or undefined, or needs more than MAX_SEEDS_FOR_POWER seeds.
    """
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size < 2 or diffs.std(ddof=1) == 0 or diffs.mean() == 0:
        return None
    effect = diffs.mean() / diffs.std(ddof=1)
    if paired_ttest_power(effect, MAX_SEEDS_FOR_POWER, alpha) < power:
        return None
    lo, hi = 2, 2
    while paired_ttest_power(effect, hi, alpha) < power:
        lo, hi = hi, hi * 2
    while lo < hi:  # power grows with n: binary search for the first n that reaches it
        mid = (lo + hi) // 2
        if paired_ttest_power(effect, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def verdict(mean_diff: float, p_value: float, alpha: float = ALPHA) -> str:
    """'better' / 'worse' when the paired t-test rejects at alpha, else 'no detectable difference'."""
    if math.isfinite(p_value) and p_value < alpha and mean_diff != 0:
        return "better" if mean_diff > 0 else "worse"
    return "no detectable difference"


def compare(arm: str, a: np.ndarray, reference: str, b: np.ndarray, seed: int = 0,
            resamples: int = BOOTSTRAP_RESAMPLES, alpha: float = ALPHA) -> Comparison:
    """Paired comparison of A against reference B; a[s] and b[s] come from the same seed."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired comparison needs two equal-length 1-D samples, got {a.shape} and {b.shape}")
    diffs = a - b
    low, high, method = bootstrap_mean_ci(diffs, seed, resamples)
    p_t = paired_ttest_p(diffs)
    return Comparison(
        arm=arm, reference=reference, n=a.size, mean_diff=float(diffs.mean()), ci_low=finite(low),
        ci_high=finite(high), ci_method=method, ci_resamples=resamples, p_ttest=finite(p_t),
        p_wilcoxon=wilcoxon_p(diffs),
        hedges_g=hedges_g_paired(diffs), prob_improvement=prob_improvement(a, b), alpha=alpha,
        verdict=verdict(float(diffs.mean()), p_t, alpha), seeds_for_power=seeds_for_power(diffs, alpha=alpha),
    )
