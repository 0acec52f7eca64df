"""Sequential decisions over replicates: repeated confidence intervals with an equivalence margin.

What it is: the rule of ``compare --replicates auto``. Replicates arrive one at a
time (or a batch at a time); after each, a look at the paired differences
d_1..d_n computes the repeated confidence interval (RCI) of their mean,

    mean_n ± c_n · sd_n / sqrt(n),    c_n = t_{n-1}^{-1}(1 - p*/2),

where the nominal level p* is chosen so that the intervals at every n in
[min_n, max_n] hold the true mean simultaneously with probability 1 - alpha
(Jennison & Turnbull's finite-horizon RCI with a Pocock-type constant
boundary). Because the coverage is simultaneous, the first look where

- the interval lies above 0 decides **better**,
- it lies below 0 decides **worse**,
- it lies inside (-margin, +margin) decides **equivalent**,

keeps every error rate at or below alpha, whatever the looks. At ``max_n`` with
none of them the answer is **inconclusive**. p* is calibrated by simulating
t-statistic paths under the normal model (``calibrate_p_star``).

A robustness check rides along: the exact sign test on wins, group-sequential
at the same looks, with its own Pocock-type nominal level computed exactly by
dynamic programming over the binomial random walk (``sign_level``).

What it is not: aware of replicates, files or arms. Every function is pure.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

DECISIONS = ("better", "worse", "equivalent", "inconclusive")
#: Paths simulated to calibrate p*: the simulated coverage's standard error is
#: sqrt(alpha (1 - alpha) / PATHS), 0.00049 at alpha 0.05.
PATHS = 200_000
CALIBRATION_SEED = 20_260_101
_CHUNK = 25_000


def _t():
    from scipy import stats as scipy_stats  # scipy is imported when a statistic is computed

    return scipy_stats.t


def check_design(min_n: int, max_n: int, alpha: float, batch: int = 1) -> None:
    """Refuse a design the rule cannot run (ValueError naming what is wrong)."""
    if min_n < 2:
        raise ValueError(f"min replicates must be at least 2 (an interval needs a standard deviation), got {min_n}")
    if max_n < min_n:
        raise ValueError(f"max replicates ({max_n}) must be at least min replicates ({min_n})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if batch < 1:
        raise ValueError(f"the batch of replicates between looks must be at least 1, got {batch}")


def look_points(min_n: int, max_n: int, batch: int = 1) -> list[int]:
    """The n at which looks are taken: min_n, then every ``batch`` replicates, and max_n."""
    return sorted({*range(min_n, max_n + 1, batch), max_n})


@functools.lru_cache(maxsize=64)
def calibrate_p_star(min_n: int, max_n: int, alpha: float, paths: int = PATHS,
                     seed: int = CALIBRATION_SEED) -> float:
    """The nominal two-sided level p* whose t-intervals at every n in [min_n, max_n] cover together w.p. 1 - alpha.

    Simulates ``paths`` sequences of standard normal differences; for each, the smallest two-sided
    t-test p-value over n = min_n..max_n; p* is that minimum's alpha-quantile. The result does not
    depend on the mean or the scale of the differences (the t-statistic is pivotal).
    """
    check_design(min_n, max_n, alpha)
    t = _t()
    rng = np.random.default_rng(seed)
    minima = []
    for start in range(0, paths, _CHUNK):
        z = rng.standard_normal((min(_CHUNK, paths - start), max_n))
        total, squares = np.cumsum(z, 1), np.cumsum(z * z, 1)
        smallest = np.ones(z.shape[0])
        for n in range(min_n, max_n + 1):
            mean = total[:, n - 1] / n
            var = (squares[:, n - 1] - n * mean * mean) / (n - 1)
            stat = np.abs(mean) / np.sqrt(var / n)
            smallest = np.minimum(smallest, 2 * t.sf(stat, n - 1))
        minima.append(smallest)
    return float(np.quantile(np.concatenate(minima), alpha))


def critical_value(n: int, p_star: float) -> float:
    """c_n = t_{n-1}^{-1}(1 - p*/2)."""
    return float(_t().ppf(1 - p_star / 2, n - 1))


def _two_sided_sign_p(wins: np.ndarray, m: int) -> np.ndarray:
    from scipy import stats as scipy_stats

    binom = scipy_stats.binom
    lower, upper = binom.cdf(wins, m, 0.5), binom.sf(wins - 1, m, 0.5)
    return np.minimum(1.0, 2 * np.minimum(lower, upper))


def _sign_crossing(level: float, looks: Sequence[int]) -> float:
    """P(the sign test rejects at some look) under no difference, exactly: a walk of fair coin flips."""
    looks_set, last = set(looks), max(looks)
    alive = np.zeros(last + 1)
    alive[0] = 1.0
    crossed = 0.0
    for m in range(1, last + 1):
        step = np.zeros(last + 1)
        step[1:m + 1] += 0.5 * alive[:m]
        step[:m] += 0.5 * alive[:m]
        alive = step
        if m in looks_set:
            reject = _two_sided_sign_p(np.arange(m + 1), m) <= level
            crossed += alive[:m + 1][reject].sum()
            alive[:m + 1][reject] = 0.0
    return float(crossed)


@functools.lru_cache(maxsize=64)
def sign_level(min_n: int, max_n: int, alpha: float) -> float:
    """The largest nominal level whose sign tests at every n in [min_n, max_n] reject together w.p. <= alpha.

    Exact: the candidate levels are the attainable two-sided binomial p-values, and the crossing
    probability of each is computed by dynamic programming. 0 when no level is attainable (too few
    replicates for the sign test to ever reject).
    """
    check_design(min_n, max_n, alpha)
    looks = list(range(min_n, max_n + 1))
    candidates = np.unique(np.concatenate([_two_sided_sign_p(np.arange(m + 1), m) for m in looks]))
    low, high, best = 0, len(candidates) - 1, 0.0
    while low <= high:  # the crossing probability grows with the level
        mid = (low + high) // 2
        if _sign_crossing(float(candidates[mid]), looks) <= alpha:
            best, low = float(candidates[mid]), mid + 1
        else:
            high = mid - 1
    return best


class Look(BaseModel):
    """One look: the mean paired difference of the first n replicates and its repeated CI."""

    model_config = ConfigDict(frozen=True)
    n: int
    mean_diff: float
    rci_low: float
    rci_high: float


class SignTest(BaseModel):
    """The group-sequential exact sign test on wins at the same looks (ties left out)."""

    model_config = ConfigDict(frozen=True)
    nominal_level: float  # reject at a look when the two-sided binomial p-value is at most this
    decision: str | None  # "better" / "worse" at its first rejecting look, None if it never rejected
    n: int | None  # the look at which it decided
    earliest: int | None  # the first look at which it could reject at all (None: none within the maximum)
    wins: int  # over the replicates the main rule used
    losses: int


class Sequential(BaseModel):
    """A sequential comparison's decision and every look that led to it (differences in the unit of ``diffs``)."""

    model_config = ConfigDict(frozen=True)
    decision: str | None  # one of DECISIONS; None while open (fewer than max replicates, none decided)
    replicates_used: int  # n at the deciding look (or the last look)
    rci_low: float | None
    rci_high: float | None
    mean_diff: float | None
    margin: float
    alpha: float  # the family's error rate
    alpha_per_comparison: float  # alpha / comparisons (Bonferroni)
    comparisons: int
    min_replicates: int
    max_replicates: int
    batch: int
    p_star: float
    p_star_paths: int
    within_margin: bool  # the deciding interval also lies inside (-margin, +margin)
    p_outperform: float | None  # share of wins over the first n (ties one half)
    meaningful: bool | None  # better / worse only: P(A > B) reaches gamma (<= 1 - gamma for worse)
    gamma: float
    sign_test: SignTest
    agrees_with_sign_test: bool | None  # None: the sign test could not have decided by the stop
    rule: str
    looks: list[Look]


def decide(low: float, high: float, margin: float) -> str | None:
    """The decision an interval supports: better / worse before equivalent; None if none."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    if -margin < low and high < margin:
        return "equivalent"
    return None


def rule_text(margin_points: float, alpha: float, comparisons: int, min_n: int, max_n: int) -> str:
    split = f", alpha {alpha:g} split over {comparisons} comparisons" if comparisons > 1 else f", alpha {alpha:g}"
    return (f"sequential repeated CI (Pocock-type, {min_n}..{max_n} replicates{split}): better / worse when the "
            f"interval excludes 0, equivalent when it lies inside ±{margin_points:g} points, else inconclusive "
            "at the maximum")


def interval(diffs: np.ndarray, p_star: float) -> tuple[float, float, float]:
    """(mean, low, high) of the repeated CI over all of ``diffs``; finite for any finite input."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    scale = float(np.max(np.abs(d))) or 1.0  # huge values: computed on a scaled copy, no overflow
    scaled = d / scale
    mean = float(scaled.mean())
    sd = float(scaled.std(ddof=1))
    half = critical_value(n, p_star) * sd / math.sqrt(n)
    return mean * scale, (mean - half) * scale, (mean + half) * scale


def _sign_path(d: np.ndarray, looks: list[int], level: float) -> tuple[str | None, int | None]:
    for n in looks:
        wins, losses = int((d[:n] > 0).sum()), int((d[:n] < 0).sum())
        m = wins + losses
        if m and _two_sided_sign_p(np.array([wins]), m)[0] <= level:
            return ("better" if wins > losses else "worse"), n
    return None, None


def sequential(diffs: Sequence[float], *, min_n: int, max_n: int, margin: float, alpha: float = 0.05,
               comparisons: int = 1, batch: int = 1, gamma: float = 0.75, margin_points: float | None = None,
               complete: bool = False, p_star: float | None = None) -> Sequential:
    """The decision over the differences recorded so far, in replicate order (pure).

    ``margin`` is in the unit of ``diffs`` (``margin_points`` only labels the rule). Differences past
    the deciding look are ignored, so replicates finished after the stop never change the answer.
    ``complete``: no further replicate will come (an open comparison then ends inconclusive).
    ``p_star`` may be passed (e.g. read from a cache); by default it is calibrated.
    """
    check_design(min_n, max_n, alpha, batch)
    if comparisons < 1:
        raise ValueError(f"comparisons must be at least 1, got {comparisons}")
    if not margin > 0:
        raise ValueError(f"the margin must be positive, got {margin}")
    d = np.asarray(diffs, dtype=float)[:max_n]
    if d.ndim != 1 or not np.isfinite(d).all():
        raise ValueError("differences must be a sequence of finite numbers (leave out replicates without a score)")
    each = alpha / comparisons
    p_star = calibrate_p_star(min_n, max_n, each) if p_star is None else p_star
    level = sign_level(min_n, max_n, each)
    looks, decision = [], None
    points = look_points(min_n, max_n, batch)
    if complete and d.size >= min_n and d.size not in points:
        points = sorted({*points, int(d.size)})  # no more to come: a last look at what there is (coverage holds)
    for n in points:
        if n > d.size:
            break
        mean, low, high = interval(d[:n], p_star)
        looks.append(Look(n=n, mean_diff=mean, rci_low=low, rci_high=high))
        decision = decide(low, high, margin)
        if decision is not None:
            break
    if decision is None and (complete or (looks and looks[-1].n == max_n)):
        decision = "inconclusive"
    last = looks[-1] if looks else None
    used = last.n if last else int(d.size)
    wins, losses = int((d[:used] > 0).sum()), int((d[:used] < 0).sum())
    p_out = (wins + 0.5 * (used - wins - losses)) / used if used else None
    sign_decision, sign_n = _sign_path(d[:used], [look.n for look in looks], level)
    meaningful = None
    if decision == "better":
        meaningful = p_out >= gamma
    elif decision == "worse":
        meaningful = p_out <= 1 - gamma
    earliest = next((n for n in look_points(min_n, max_n, batch) if level > 0 and 2 * 0.5 ** n <= level), None)
    agrees = sign_decision == decision if decision in ("better", "worse") else sign_decision is None
    if decision in ("better", "worse") and sign_decision is None and (earliest is None or earliest > used):
        agrees = None  # too few replicates for the sign test to say anything yet
    within = last is not None and -margin < last.rci_low and last.rci_high < margin
    return Sequential(
        decision=decision, replicates_used=used, rci_low=last.rci_low if last else None,
        rci_high=last.rci_high if last else None, mean_diff=last.mean_diff if last else None, margin=margin,
        alpha=alpha, alpha_per_comparison=each, comparisons=comparisons, min_replicates=min_n,
        max_replicates=max_n, batch=batch, p_star=p_star, p_star_paths=PATHS, within_margin=within,
        p_outperform=p_out, meaningful=meaningful, gamma=gamma,
        sign_test=SignTest(nominal_level=level, decision=sign_decision, n=sign_n, earliest=earliest, wins=wins,
                           losses=losses),
        agrees_with_sign_test=agrees,
        rule=rule_text(margin if margin_points is None else margin_points, alpha, comparisons, min_n, max_n),
        looks=looks,
    )


def simulate(effect: float, *, min_n: int, max_n: int, margin: float, alpha: float = 0.05, batch: int = 1,
             paths: int = 10_000, seed: int = 0, p_star: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Operating characteristics under the normal model with sd 1: the decision and n of ``paths`` runs.

    ``effect`` and ``margin`` are in sd units. Returns (decisions as strings, replicates used). The rule is
    the one ``sequential`` applies, vectorised over paths.
    """
    check_design(min_n, max_n, alpha, batch)
    p_star = calibrate_p_star(min_n, max_n, alpha) if p_star is None else p_star
    d = np.random.default_rng(seed).normal(effect, 1.0, (paths, max_n))
    total, squares = np.cumsum(d, 1), np.cumsum(d * d, 1)
    decision = np.full(paths, "", dtype=object)
    used = np.full(paths, max_n)
    for n in look_points(min_n, max_n, batch):
        mean = total[:, n - 1] / n
        sd = np.sqrt(np.maximum(squares[:, n - 1] - n * mean * mean, 0) / (n - 1))
        half = critical_value(n, p_star) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
        open_ = decision == ""
        for word, hit in (("better", low > 0), ("worse", high < 0),
                          ("equivalent", (-margin < low) & (high < margin))):
            now = open_ & hit
            decision[now], used[now] = word, n
            open_ &= ~now
    decision[decision == ""] = "inconclusive"
    return decision.astype(str), used


def fixed_n_for(effect: float, alpha: float, power: float) -> int:
    """Replicates a fixed-n two-sided paired t-test needs for ``power`` at ``effect`` (sd units), by the t power."""
    from scipy import stats as scipy_stats

    for n in range(2, 10_000):
        crit = _t().ppf(1 - alpha / 2, n - 1)
        nc = effect * math.sqrt(n)
        if scipy_stats.nct.sf(crit, n - 1, nc) + scipy_stats.nct.cdf(-crit, n - 1, nc) >= power:
            return n
    return 10_000
