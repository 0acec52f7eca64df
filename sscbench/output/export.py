"""Tidy rows for people's own analysis: one row per (workload, arm, replicate, seed).

What it is: a pure function from a results model (a study, a comparison over workloads, a comparison
or an evaluation) to rows of plain values, the list of columns, and the two writers (CSV with the
standard library; Parquet through pandas and pyarrow where they are installed).
What it is not: a place that computes statistics; every value is read from the results.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sscbench.files import write_atomic
from sscbench.output.results import CompareResult, EvaluateResult, StudyResult, WorkloadsCompareResult

#: The fixed columns, in order; every hyperparameter follows as ``param_NAME``.
COLUMNS = {
    "workload": "the workload (task and model family)",
    "arm": "the arm's name",
    "regularizer": "the arm's plugin",
    "reference": "the arm the comparison measures against (empty where there is none)",
    "replicate": "replicate index r (0 for a single evaluation)",
    "data_seed": "the data seed of the replicate (data.seed + r)",
    "resampled": "true where a replicate is a resample of a fixed archive, false where the data is drawn again",
    "seed": "the model seed (initialisation and batch order), shared by every arm of the replicate",
    "test_accuracy": "final-epoch test accuracy of that seed (a fraction); empty where it diverged",
    "diverged": "true where that seed's training diverged",
    "replicate_score": "the arm's mean test accuracy over the replicate's non-diverged seeds",
    "params_source": "where the hyperparameters came from (tuned in which study and trial, or fixed)",
}


def _bool(x: bool) -> str:
    return "true" if x else "false"


def _compare_rows(result: CompareResult) -> Iterator[dict[str, Any]]:
    resampled = result.resampled
    for rec in result.replicates:
        for arm in rec.arms:
            for seed, acc in zip(rec.model_seeds, arm.test_accuracy, strict=True):
                yield {"workload": result.spec.workload.name, "arm": arm.name, "regularizer": arm.regularizer,
                       "reference": result.reference or "", "replicate": rec.index, "data_seed": rec.data_seed,
                       "resampled": _bool(resampled), "seed": seed, "test_accuracy": acc,
                       "diverged": _bool(seed in arm.diverged), "replicate_score": arm.score,
                       "params_source": arm.params_source, **{f"param_{k}": v for k, v in arm.params.items()}}


def _evaluate_rows(result: EvaluateResult) -> Iterator[dict[str, Any]]:
    for arm in result.arms:
        for seed, acc in zip(arm.seeds, arm.test_accuracy, strict=True):
            yield {"workload": result.spec.workload.name, "arm": arm.name, "regularizer": arm.regularizer,
                   "reference": result.reference or "", "replicate": 0, "data_seed": result.spec.data.seed,
                   "resampled": "false", "seed": seed, "test_accuracy": acc, "diverged": _bool(seed in arm.diverged),
                   "replicate_score": arm.mean, "params_source": arm.params_source,
                   **{f"param_{k}": v for k, v in arm.params.items()}}


def rows(result: StudyResult | WorkloadsCompareResult | CompareResult | EvaluateResult
         ) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns (fixed ones, then every hyperparameter seen, sorted) and one row per arm, replicate and seed."""
    if isinstance(result, StudyResult | WorkloadsCompareResult):
        found = [row for res in result.results for row in _compare_rows(res)]
    elif isinstance(result, CompareResult):
        found = list(_compare_rows(result))
    else:
        found = list(_evaluate_rows(result))
    params = sorted({k for row in found for k in row if k.startswith("param_")})
    return [*COLUMNS, *params], found


def csv_text(columns: list[str], found: list[dict[str, Any]]) -> str:
    """The rows as CSV, a header line first; a missing value (a diverged seed, a parameter an arm lacks) is empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in found:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


class ExportError(ValueError):
    """An export that cannot be written here (a format whose library is missing)."""


def write(columns: list[str], found: list[dict[str, Any]], path: Path, fmt: str) -> None:
    """Write the rows to ``path`` atomically as ``csv`` or ``parquet``."""
    if fmt == "csv":
        write_atomic(path, csv_text(columns, found))
        return
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' Parquet engine)
    except ImportError:
        raise ExportError("--format parquet needs pandas and pyarrow: pip install pandas pyarrow "
                          "(or use --format csv)") from None
    frame = pd.DataFrame(found, columns=columns)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_atomic(path, buffer.getvalue())
