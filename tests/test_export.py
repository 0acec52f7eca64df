"""`sscbench export`: one tidy row per (workload, arm, replicate, seed), read back with the csv module."""

from __future__ import annotations

import csv
import sys

from conftest import invoke, ok
from test_study import tuned  # noqa: F401  (a shared fixture: the study runs once)

from sscbench.output import export, results
from sscbench.output.results import StudyResult


def test_a_study_exports_one_row_per_workload_arm_replicate_and_seed(tuned, tmp_path):  # noqa: F811
    out, _ = tuned
    res = ok("export", "--out", out, "--to", tmp_path / "study.csv")
    with open(tmp_path / "study.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    study = results.load(out / "study.json", StudyResult)
    expected = [(r.spec.workload.name, a.name, rec.index, seed, acc)
                for r in study.results for rec in r.replicates for a in rec.arms
                for seed, acc in zip(rec.model_seeds, a.test_accuracy, strict=True)]
    assert len(rows) == len(expected) == 2 * 2 * 3 * 2  # workloads x replicates x arms x seeds
    assert [(r["workload"], r["arm"], int(r["replicate"]), int(r["seed"]), float(r["test_accuracy"]))
            for r in rows] == expected
    assert f"wrote {len(rows)} rows" in res.output
    assert list(rows[0])[:len(export.COLUMNS)] == list(export.COLUMNS)
    for row in rows:  # every arm's hyperparameters as columns; an arm without one leaves it empty
        assert float(row["param_lr"]) > 0 and float(row["param_weight_decay"]) >= 0
        assert (row["param_lambda_ssc"] != "") == (row["regularizer"] == "ssc")
        assert row["resampled"] == "false" and row["reference"] == "baseline"
        assert int(row["data_seed"]) == 42 + int(row["replicate"])


def test_bad_exports_are_one_line(tuned, tmp_path, monkeypatch):  # noqa: F811
    out, _ = tuned
    res = invoke("export", "--out", tmp_path)
    assert res.exit_code == 2 and "nothing to export" in res.output
    res = invoke("export", "--out", out, "--format", "xlsx")
    assert res.exit_code == 2 and "--format must be csv or parquet" in res.output
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    res = invoke("export", "--out", out, "--format", "parquet", "--to", tmp_path / "x.parquet")
    assert res.exit_code == 2 and "needs pandas and pyarrow" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.parquet").exists()


def test_every_column_is_documented():
    from pathlib import Path

    docs = (Path(__file__).resolve().parent.parent / "docs" / "study.md").read_text()
    for column in [*export.COLUMNS, "param_NAME"]:
        assert f"| `{column}` |" in docs, column
