"""`sscbench study` end to end at tiny sizes: the matrix, decisions, budgets, resume, interruption, workers,
refusals, and `report` (tables and the HTML page) on its results."""

from __future__ import annotations

import errno
import os
import signal

import pytest
from conftest import SMALL_DATA, invoke, ok, once
from test_compare_sequential import spec_of
from test_reliability import run, start, wait_for
from test_workers import finish, needs_pg, spawn

from sscbench.contracts import registry
from sscbench.output import render, results
from sscbench.output.results import CompareResult, StudyResult
from sscbench.stages import study as study_mod

#: baseline, its twin (equivalent at the first look) and an arm that cannot learn (worse at the first look), on
#: small data: a study here is many complete protocol runs
FIXED = SMALL_DATA + spec_of("baseline", "twin", "frozen")
SIZES = ("--seeds", 2, "--epochs", 4, "--min-replicates", 3, "--max-replicates", 4)
TWO = ("--workloads", "mnist1d-mlp,mnist1d-cnn")


def load(out) -> StudyResult:
    return results.load(out / "study.json", StudyResult)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    """A study of fixed arms on two workloads (computed once for all xdist workers)."""
    def make(root):
        (root / "spec.toml").write_text(FIXED)
        return ok("study", "--spec", root / "spec.toml", *TWO, *SIZES, "--out", root / "out").output

    root, output = once(tmp_path_factory, "study-fixed", make)
    return root / "spec.toml", root / "out", output


def cells(result: StudyResult) -> list[tuple]:
    return [(c.arm, c.workload, c.status, c.decision, c.replicates, c.mean_diff, c.low, c.high) for c in result.cells]


def test_every_cell_is_decided_and_the_matrix_has_a_row_per_arm_and_a_column_per_workload(fixed):
    _, out, output = fixed
    result = load(out)
    assert result.reference == "baseline" and result.arms == ["twin", "frozen"]
    assert result.workloads == ["mnist1d-mlp", "mnist1d-cnn"]
    decided = {(c.arm, c.workload): (c.decision, c.replicates) for c in result.cells}
    for workload in result.workloads:
        assert decided[("twin", workload)] == ("equivalent", 3)  # identical arms: sd 0, at the first look
        assert decided[("frozen", workload)] == ("worse", 3)  # cannot learn: far below, at the first look
    # alpha split over every cell of the study, not per workload
    assert result.budget.comparisons == 4 and result.budget.alpha == 0.05
    assert not any(c.resampled for c in result.cells)  # mnist1d is drawn again in every replicate
    for res in result.results:
        assert all(c.sequential.alpha_per_comparison == pytest.approx(0.05 / 4) for c in res.comparisons)
    assert "Every arm against 'baseline' on every workload" in output and "equivalent" in output


def test_the_study_record_agrees_with_each_workloads_compare_file(fixed):
    _, out, _ = fixed
    result = load(out)
    for name, embedded in zip(result.workloads, result.results, strict=True):
        on_disk = results.load(out / name / "compare.json", CompareResult)
        assert on_disk.comparisons == embedded.comparisons
        for c in (x for x in result.cells if x.workload == name):
            comparison = next(x for x in on_disk.comparisons if x.arm == c.arm)
            seq = comparison.sequential
            assert (c.decision, c.replicates, c.low, c.high) == (seq.decision, seq.replicates_used, seq.rci_low,
                                                                  seq.rci_high)
            assert c.mean_diff == seq.mean_diff


def test_budgets_add_up_to_the_studys_total(fixed):
    _, out, _ = fixed
    result = load(out)
    every = [rec for res in result.results for rec in res.replicates]
    assert result.total.replicates == len(every) == 6  # 3 replicates on each workload
    assert result.total.model_epochs == sum(rec.model_epochs for rec in every)
    # fixed hyperparameters: no tuning; evaluation 3 replicates x 2 seeds x 4 epochs per cell
    assert {(c.tuning_model_epochs, c.evaluation_model_epochs) for c in result.cells} == {(0, 24)}
    # the total counts what trained: twin has baseline's values and seeds, so it trained once with it
    assert result.total.model_epochs == 2 * 3 * 2 * 2 * 4  # workloads x replicates x configs x seeds x epochs


def test_a_second_run_reuses_every_replicate_and_gives_the_same_matrix(fixed, tmp_path):
    spec, out, _ = fixed
    copy = tmp_path / "out"
    for path in out.rglob("replicate-*.json"):
        target = copy / path.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    ok("study", "--spec", spec, *TWO, *SIZES, "--out", copy)
    again = load(copy)
    assert cells(again) == cells(load(out))
    assert [res.reused_replicates for res in again.results] == [[0, 1, 2], [0, 1, 2]]


def test_an_interrupted_study_resumes_to_the_same_matrix(fixed, tmp_path):
    spec, out, _ = fixed
    args = ("study", "--spec", spec, *TWO, *SIZES)
    proc = start(*args, "--out", tmp_path / "cut", cwd=tmp_path)
    wait_for(lambda: list((tmp_path / "cut" / "mnist1d-cnn").glob("compare-replicates/*/replicate-0.json")), proc,
             "the second workload's first replicate")
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in output and "Traceback" not in output, output
    assert not (tmp_path / "cut" / "study.json").exists()
    assert run(*args, "--out", tmp_path / "cut", cwd=tmp_path).returncode == 0
    resumed = load(tmp_path / "cut")
    assert cells(resumed) == cells(load(out))
    assert resumed.results[0].reused_replicates == [0, 1, 2] and 0 in resumed.results[1].reused_replicates


@needs_pg
def test_a_study_served_by_a_worker_on_postgresql_reaches_one_processs_matrix(fixed, tmp_path, pg_url):
    spec, out, _ = fixed
    main = spawn("study", "--spec", spec, *TWO, *SIZES, "--storage", pg_url, "--out", tmp_path / "shared",
                 cwd=tmp_path)
    worker = spawn("worker", "--storage", pg_url, "--forever", cwd=tmp_path)
    try:
        finish(main)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    assert cells(load(tmp_path / "shared")) == cells(load(out))


def test_a_plugin_that_cannot_run_on_a_workload_is_a_not_applicable_cell():
    from sscbench.workload import Shape

    plan = study_mod.plan({"baseline": "baseline", "ssc": "ssc", "gradnorm": "gradnorm"},
                          {"flat": Shape((40,), 10), "images": Shape((1, 8, 8), 4)}, "baseline")
    assert plan.arms == ["baseline", "ssc", "gradnorm"]
    assert set(plan.skipped) == {("ssc", "images")}
    assert plan.skipped[("ssc", "images")] == registry.load("ssc").accepts(Shape((1, 8, 8), 4))
    assert plan.arms_on("images") == ["baseline", "gradnorm"] and plan.arms_on("flat") == plan.arms


def test_the_defaults_are_every_built_in_plugin_and_every_available_built_in_workload():
    assert study_mod.default_arms()[0] == "baseline"
    assert set(study_mod.default_arms()) == {"baseline", "ssc", "gradnorm", "spatial", "jacobian", "labelsmooth"}
    workloads = study_mod.default_workloads()
    assert workloads[:4] == ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-noisy", "mnist1d-shuffled"]
    assert workloads[4:] == ["ucr-crop", "ucr-electricdevices", "ucr-forda"]  # make test installs the archive
    assert "stripes" not in workloads  # a third-party workload is not a default


@pytest.mark.parametrize(("args", "needle"), [
    (("--workload", "mnist1d-mlp"), "--workloads"),
    (("--workloads", "mnist1d-mlp,nope"), "unknown workload 'nope'"),
    (("--arms", "baseline,nope"), "unknown regularizer 'nope'"),
    (("--arms", "baseline"), "at least one other arm"),
    (("--workloads", " , "), "--workloads needs at least one workload"),
    (("--min-replicates", 1), "min_replicates"),
])
def test_bad_study_settings_are_refused_in_one_line_and_write_nothing(tmp_path, args, needle):
    res = invoke("study", *args, "--out", tmp_path / "out")
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_report_prints_the_study_and_writes_its_page(fixed, tmp_path):
    _, out, _ = fixed
    (tmp_path / "study.json").write_bytes((out / "study.json").read_bytes())
    res = ok("report", "--out", tmp_path, "--html")
    assert "Every arm against 'baseline' on every workload" in res.output
    page = (tmp_path / "report.html").read_text()
    assert page.count('<tr><th scope="row">') == 2 and "equivalent" in page and "worse" in page


def test_a_full_disk_while_writing_the_report_leaves_the_earlier_page_intact(fixed, tmp_path, monkeypatch):
    _, out, _ = fixed
    (tmp_path / "study.json").write_bytes((out / "study.json").read_bytes())
    (tmp_path / "report.html").write_text("the earlier page")

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    res = invoke("report", "--out", tmp_path, "--html")
    monkeypatch.undo()
    assert res.exit_code == 1 and "No space left on device" in res.output and "Traceback" not in res.output
    assert (tmp_path / "report.html").read_text() == "the earlier page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "study.json"]


def test_the_markdown_matrix_has_a_row_per_arm_and_a_column_per_workload(fixed):
    _, out, _ = fixed
    table = render.study_markdown(load(out))
    lines = table.splitlines()
    assert lines[0] == "| arm vs baseline | mnist1d-mlp | mnist1d-cnn |" and len(lines) == 4
    assert lines[2].startswith("| `twin` | **equivalent** ") and "n = 3" in lines[2]
    assert lines[3].startswith("| `frozen` | **worse** ")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """The tiny study of the issue's check: baseline, ssc and gradnorm, tuned, on two workloads, and its page."""
    def make(root):
        (root / "spec.toml").write_text(SMALL_DATA)
        output = ok("study", "--spec", root / "spec.toml", "--arms", "baseline,ssc,gradnorm", *TWO, "--trials", 2,
                    "--tune-epochs", 1, "--seeds", 2, "--epochs", 1, "--min-replicates", 2, "--max-replicates", 2,
                    "--out", root / "out").output
        return output + ok("report", "--html", "--out", root / "out").output

    root, output = once(tmp_path_factory, "study-tuned", make)
    return root / "out", output


def test_a_tiny_tuned_study_records_each_cells_tuning_budget(tuned):
    out, output = tuned
    result = load(out)
    assert result.arms == ["ssc", "gradnorm"] and (out / "report.html").exists() and "wrote" in output
    for c in result.cells:  # 2 replicates x 2 trials x 1 epoch of tuning; 2 x 2 seeds x 1 epoch of evaluation
        assert c.status == "decided" and c.decision in ("better", "worse", "equivalent", "inconclusive")
        assert c.replicates == 2  # the maximum: a look at n = 2 decides nothing short of identical scores
        assert (c.tuning_model_epochs, c.evaluation_model_epochs) == (4, 4)
    assert result.budget.pruner == "none" and result.budget.trials == 2 and result.budget.max_replicates == 2
