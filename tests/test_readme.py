"""Every `sscbench` command the README shows names a real command and real options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sscbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("sscbench "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_shows_the_commands():
    subcommands = {c[0] for c in readme_commands()}
    assert {"tune", "evaluate", "reproduce", "compare", "report", "plugins", "check-plugin"} <= subcommands


@pytest.mark.parametrize("argv", readme_commands(), ids=" ".join)
def test_readme_command_uses_real_options(argv):
    help_text = runner.invoke(app, [argv[0], "--help"], terminal_width=200)
    assert help_text.exit_code == 0, f"unknown command: {argv[0]}"
    for word in argv[1:]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert re.search(rf"{re.escape(option)}(?![\w-])", help_text.output), f"{argv[0]} has no option {option}"


PUBLISHED = ROOT / "docs" / "study" / "study.json"


@pytest.mark.skipif(not PUBLISHED.exists(), reason="the published study (make study) has not written "
                                                   "docs/study/study.json yet")
def test_the_published_page_and_the_readmes_matrix_are_what_the_published_study_gives():
    from sscbench.output import html, results

    study = results.load(PUBLISHED, results.StudyResult)
    assert (ROOT / "docs" / "study" / "report.html").read_text() == html.study_page(study)
    readme = (ROOT / "README.md").read_text()
    assert _tool().with_matrix(readme, study) == readme


def _tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_matrix", ROOT / "tools" / "readme_matrix.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_the_readme_matrix_tool_replaces_only_the_block_between_its_markers(monkeypatch):
    from sscbench.output import render

    tool = _tool()
    monkeypatch.setattr(render, "study_markdown", lambda study: f"| {study} |\n")
    text = f"before\n{tool.START}\n| old |\n{tool.END}\nafter\n"
    assert tool.with_matrix(text, "new") == f"before\n{tool.START}\n| new |\n{tool.END}\nafter\n"


def _readme_workload_row(name: str) -> list[str]:
    rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"the README's workload table has {len(rows)} rows for {name}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def _signed(x: float) -> str:
    return f"{x * 100:+.2f}"


@pytest.mark.parametrize("name", ["ucr-electricdevices", "ucr-forda"])
def test_the_readmes_archive_rows_are_the_committed_reproduce_records(name):
    """The README's numbers for a long archive run are those of its record in docs/runs/NAME/, and the committed
    comparison's replicate 0 (the same protocol, resumed from that run's storage) has its accuracies seed for seed."""
    from sscbench.output import render, results

    record = results.load(ROOT / "docs" / "runs" / name / "evaluate.json", results.EvaluateResult)
    assert record.spec.workload.name == name
    arms = {a.name: a for a in record.arms}
    (comparison,) = record.comparisons
    cells = _readme_workload_row(name)
    for cell, arm in zip(cells[2:4], ("baseline", "ssc"), strict=True):
        assert cell == f"{render.pct(arms[arm].mean)} ± {render.pct(arms[arm].std)}", (name, arm, cell)
    assert cells[4] == (f"{_signed(comparison.mean_diff)} [{_signed(comparison.ci_low)}, "
                        f"{_signed(comparison.ci_high)}], {comparison.verdict}")
    (path,) = (ROOT / "docs" / "runs" / name / "compare-replicates").glob("*/replicate-0.json")
    zero = results.load(path, results.ReplicateRecord)
    assert {a.name: a.test_accuracy for a in zero.arms} == {a.name: a.test_accuracy for a in record.arms}


def test_the_readmes_crop_row_is_the_committed_comparisons_replicate_zero():
    """Crop's README row (its reproduce) equals replicate 0 of the committed comparison: the same protocol."""
    import numpy as np

    from sscbench.output import render, results

    (path,) = (ROOT / "docs" / "runs" / "ucr-crop" / "compare-replicates").glob("*/replicate-0.json")
    record = results.load(path, results.ReplicateRecord)
    arms = {a.name: np.asarray(a.test_accuracy) for a in record.arms}
    cells = _readme_workload_row("ucr-crop")
    for cell, arm in zip(cells[2:4], ("baseline", "ssc"), strict=True):
        assert cell == f"{render.pct(arms[arm].mean())} ± {render.pct(arms[arm].std())}", (arm, cell)
    assert cells[4].startswith(f"{_signed(arms['ssc'].mean() - arms['baseline'].mean())} [")


@pytest.mark.parametrize(("workload", "label"), [("ucr-crop", "Crop"), ("ucr-electricdevices", "ElectricDevices"),
                                                 ("ucr-forda", "FordA")])
def test_the_readmes_word_on_a_replicated_archive_comparison_is_the_committed_replicates_sequential_state(
        workload, label):
    """The README's word on an archive workload's comparison (its verdict or that it is undecided, the looks, the
    mean, the repeated CI, ssc's wins) is what the sequential rule gives over the committed replicates, under the
    settings of the command it names."""
    from test_runs_docs import WORDS, committed_comparison

    text = " ".join((ROOT / "README.md").read_text().split())
    design = re.search(r"Baseline against ssc, replicated \(`--replicates auto`, (\d+) to (\d+) replicates\)", text)
    assert design, "the README's sentence on the archive workloads' comparisons is missing or reworded"
    found = re.search(rf"{label}'s? (is undecided|ended \w+) after (\w+): ([+-]\d+\.\d\d) points, repeated CI "
                      r"\[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\](?: \(ssc won (\d+) of (\d+)\))?", text)
    assert found, f"the README's word on {label}'s comparison is missing or reworded"
    low_n, high_n = design.groups()
    state, looks, mean, low, high, wins, of = found.groups()
    _, decided, both, diffs = committed_comparison(workload, int(low_n), int(high_n))
    assert state == ("is undecided" if decided.decision is None else f"ended {decided.decision}")
    assert len(both) >= 5 and looks == WORDS[len(both)]
    assert (mean, low, high) == (_signed(decided.mean_diff), _signed(decided.rci_low), _signed(decided.rci_high))
    assert wins is None or (int(wins), int(of)) == (int((diffs > 0).sum()), len(both))
