"""Operating characteristics of ``compare --replicates auto``, simulated under the normal model.

Run with ``make bench-sequential`` (``--tiny`` is the size the suite runs). For the default design
(min 5, max 40 replicates, alpha 0.05, margin 0.5 points) and a per-replicate difference with the
standard deviation measured on mnist1d (``--sd``, in accuracy points), it simulates the rule for
true differences of 0, 0.5 and 1 point (and 2 sd), or those ``--differences`` lists, and reports, for each:

- the share of each decision (better / worse / equivalent / inconclusive);
- the expected and the 90th percentile of the replicates used;
- beside it, what a fixed design needs for the same error rates: the paired t-test's n for the
  power the sequential rule reached (at most 0.99), and the equivalence (two one-sided tests) n for the share
  of "equivalent" it reached under no difference.

Writes ``results/bench-sequential.json`` and prints a table. Pure simulation: no training.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sscbench.stats import sequential as sq  # noqa: E402

SIZES = {"default": {"paths": 20_000, "tost_paths": 20_000}, "tiny": {"paths": 400, "tost_paths": 400}}


def tost_n(share: float, margin: float, alpha: float, paths: int, seed: int, limit: int = 400) -> int | None:
    """The smallest fixed n whose two one-sided tests show equivalence, under no difference, in ``share`` of runs."""
    from scipy import stats

    if share <= 0:
        return None
    rng = np.random.default_rng(seed)
    for n in range(2, limit + 1):
        d = rng.standard_normal((paths, n))
        half = stats.t.ppf(1 - alpha, n - 1) * d.std(1, ddof=1) / math.sqrt(n)
        if ((np.abs(d.mean(1)) + half) < margin).mean() >= share:
            return n
    return None


def _differences(text: str) -> tuple[float, ...]:
    """``--differences``: a comma-separated list of non-negative numbers of points."""
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"differences must be finite and at least 0: {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the size the suite runs")
    parser.add_argument("--sd", type=float, default=0.78, help="sd of the per-replicate difference, in points")
    parser.add_argument("--margin", type=float, default=0.5, help="equivalence margin, in points")
    parser.add_argument("--min-replicates", type=int, default=5)
    parser.add_argument("--max-replicates", type=int, default=40)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--differences", type=_differences, default=None, metavar="D1,D2,...",
                        help="true differences to simulate, in points (default: 0, 0.5, 1 and 2 sd)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench-sequential.json")
    args = parser.parse_args()
    size = SIZES["tiny" if args.tiny else "default"]
    lo, hi, alpha, sd = args.min_replicates, args.max_replicates, args.alpha, args.sd
    p_star = sq.calibrate_p_star(lo, hi, alpha)
    rows = []
    effects = args.differences if args.differences is not None else (0.0, 0.5, 1.0, 2 * sd)
    for k, effect in enumerate(effects):
        decisions, used = sq.simulate(effect / sd, min_n=lo, max_n=hi, margin=args.margin / sd, alpha=alpha,
                                      paths=size["paths"], seed=100 + k, p_star=p_star)
        shares = {word: float((decisions == word).mean()) for word in sq.DECISIONS}
        row = {"difference_points": effect, "decisions": shares, "expected_replicates": float(used.mean()),
               "replicates_p90": float(np.percentile(used, 90))}
        if effect > 0 and shares["better"] > 0:  # the power the rule reached (at most 0.99)
            row["fixed_n_same_power"] = sq.fixed_n_for(effect / sd, alpha, min(shares["better"], 0.99))
        if effect == 0:
            row["fixed_n_same_equivalence"] = tost_n(shares["equivalent"], args.margin / sd, alpha,
                                                     size["tost_paths"], seed=7)
        rows.append(row)
    report = {"size": "tiny" if args.tiny else "default", "paths": size["paths"], "sd_points": sd,
              "margin_points": args.margin, "min_replicates": lo, "max_replicates": hi, "alpha": alpha,
              "p_star": p_star, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"sequential rule, {lo}..{hi} replicates, alpha {alpha}, margin ±{args.margin} points, "
          f"difference sd {sd} points, p* = {p_star:.4f}, {size['paths']:,} simulated paths per row")
    print(f"{'true diff':>10} {'better':>7} {'worse':>7} {'equiv.':>7} {'inconcl.':>8} {'E[n]':>6} {'n p90':>6} "
          f"{'fixed n':>8}")
    for row in rows:
        d = row["decisions"]
        fixed = row.get("fixed_n_same_power", row.get("fixed_n_same_equivalence"))
        print(f"{row['difference_points']:>10.2f} {d['better']:>7.3f} {d['worse']:>7.3f} {d['equivalent']:>7.3f} "
              f"{d['inconclusive']:>8.3f} {row['expected_replicates']:>6.1f} {row['replicates_p90']:>6.0f} "
              f"{'-' if fixed is None else fixed:>8}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
