"""Every table stays readable at 80 columns (a terminal, or rich's width when output goes to a file).

No cell is cut with an ellipsis, no line is wider than 80 characters, and no word of a cell that
carries a number or a verdict is folded in two. The results come from real tiny runs; a comparison
of seven arms (the two-arm one with its ssc arm copied under five more names, as long as the
built-in ones get) draws the long layout of the replicates table beside the wide one.
"""

from __future__ import annotations

import io

import pytest
from conftest import ok, small_data
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sscbench.output import render, results
from sscbench.output.results import CompareResult, EvaluateResult, TuneResult, WorkloadsCompareResult
from sscbench.stages import study
from sscbench.stats import sequential

TINY = ["--trials", "2", "--tune-epochs", "1", "--seeds", "2", "--epochs", "1"]


@pytest.fixture
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tables")
    small = small_data(out)
    ok("reproduce", *TINY, *small, "--arms", "baseline,labelsmooth", "--ablations", "--out", out / "run")
    ok("compare", *TINY, *small, "--replicates", "2", "--workloads", "mnist1d-mlp,mnist1d-shuffled",
       "--out", out / "w")
    return out


def tables(out) -> dict[str, Table]:
    evaluation = results.load(out / "run" / "evaluate.json", EvaluateResult)
    found = {"plugins": render.plugins_table(), "workloads": render.workloads_table(),
             "tune": render.tune_table(results.load(out / "run" / "tune-labelsmooth.json", TuneResult)),
             "evaluate": render.evaluate_table(evaluation), "comparison": render.comparison_table(evaluation),
             "diagnostics": render.diagnostics_table(evaluation),
             "workloads comparison": render.workloads_comparison_table(
                 results.load(out / "w" / "compare-workloads.json", WorkloadsCompareResult))}
    workloads = results.load(out / "w" / "compare-workloads.json", WorkloadsCompareResult)
    plan = study.Plan([a.name for a in workloads.results[0].spec.evaluate.arms], workloads.workloads,
                      {("ssc", workloads.workloads[-1]): "the plugin needs 1-D inputs, got samples of shape [1, 8, 8]"})
    found["study"] = render.study_table(study.assemble(
        plan, dict(zip(workloads.workloads, workloads.results, strict=True)), workloads.provenance))
    two = results.load(out / "w" / "mnist1d-mlp" / "compare.json", CompareResult)  # baseline against ssc
    for name, compared in (("two", two), ("seven", more_arms(two, ["ssc-off", "gradnorm", "gradnorm-off",
                                                                      "labelsmooth", "labelsmooth-off"]))):
        found |= {f"replicates ({name} arms)": render.replicates_table(compared),
                  f"budget ({name} arms)": render.budget_table(compared),
                  f"replicated comparison ({name} arms)": render.replicated_comparison_table(compared),
                  f"sequential ({name} arms)": render.sequential_table(decided(compared))}
    return found


def decided(result: CompareResult) -> CompareResult:
    """The comparison as ``--replicates auto`` with 2 replicates at most would record it, its longest notes shown."""
    comparisons = [c.model_copy(update={
        "sequential": sequential.sequential(c.diffs, min_n=2, max_n=2, margin=0.005, comparisons=6, complete=True,
                                            margin_points=0.5),
        "after_stop": [0.001] * 12}) for c in result.comparisons]
    spec = result.spec.model_copy(update={"compare": result.spec.compare.model_copy(update={"replicates": "auto"})})
    return result.model_copy(update={"comparisons": comparisons, "spec": spec})


def more_arms(result: CompareResult, names: list[str]) -> CompareResult:
    """The comparison with its 'ssc' arm copied under each of ``names`` (scores, comparisons and all)."""
    doc = result.model_dump(mode="json", by_alias=True)

    def copies(items: list[dict], key: str) -> list[dict]:
        ssc = next(item for item in items if item[key] == "ssc")
        return items + [ssc | {key: name} for name in names]

    for replicate in doc["replicates"]:
        replicate["arms"] = copies(replicate["arms"], "name")
    doc["arms"], doc["comparisons"] = copies(doc["arms"], "name"), copies(doc["comparisons"], "arm")
    return CompareResult.model_validate(doc)


def rendered(table: Table, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(table)
    return console.file.getvalue()


def test_every_table_reads_at_80_columns_with_every_word_whole_and_narrower_folds_never_cuts(tiny):
    drawn = tables(tiny)
    assert "mean" in rendered(drawn["replicates (two arms)"]) and "arm" in rendered(drawn["replicates (seven arms)"])
    for name, table in drawn.items():
        text = rendered(table)
        assert "…" not in text and "…" not in rendered(table, width=40), name
        assert max(len(line) for line in text.splitlines()) <= 80, name
        words = " ".join(text.replace("│", " ").replace("┃", " ").split())
        for column in table.columns:
            for cell in column.cells:
                for word in Text.from_markup(str(cell)).plain.split():
                    assert f" {word} " in f" {words} ", f"{name}: '{word}' is folded or missing"


def test_squeezed_a_table_keeps_whole_words_while_they_fit_and_never_crops_a_column():
    def draw(width: int) -> str:
        table = render._table("t", "arm", "diff [95% CI]", "verdict", "n for 80% power")
        table.add_row("labelsmooth-off", "+0.48\n[+0.05, +0.83]", "no detectable difference", "23")
        return rendered(render._fit(table), width)

    roomy = draw(50)  # the longest words fit: rich alone would fold "detectable" here
    assert "detectable" in roomy and "labelsmooth-off" in roomy and "[+0.05," in roomy
    for width in (30, 46, 50, 80):
        lines = [line for line in draw(width).splitlines() if line[:1] in "┏┃┡│└"]
        assert lines and all(len(line) <= width and line[-1] in "┓┃┩│┘" for line in lines), width  # not cropped
