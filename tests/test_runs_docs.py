"""docs/workloads.md's tables of the replicated archive comparisons are the committed replicate records.

Each table is what the records in docs/runs/WORKLOAD/compare-replicates/ give: every replicate's test data,
both arms' mean test accuracy and their difference, then every look the sequential rule took, under the
design docs/workloads.md names. A failure prints the tables the records give. A comparison that ended has its
own `compare.json` committed beside the records, and that output says what the records give.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORDS = {n: w for n, w in enumerate("zero one two three four five six seven eight nine ten".split())}


def _signed(x: float) -> str:
    """Points with a sign, the minus a true one, as the docs write them."""
    return f"{100 * x:+.2f}".replace("-", "\u2212")


def _design(text: str) -> tuple[int, int]:
    found = re.search(r"`sscbench compare --workload WORKLOAD --replicates auto --min-replicates (\d+) "
                      r"--max-replicates (\d+)`", " ".join(text.split()))
    assert found, "docs/workloads.md no longer names the replicated comparisons' command"
    return int(found.group(1)), int(found.group(2))


def committed_comparison(workload: str, low: int, high: int):
    """The committed replicate records of ``workload``'s comparison of ssc with baseline, in index order, and
    the sequential rule's state over them under a ``low``..``high`` design: (records, decision, the replicates
    that trained both arms, their differences)."""
    from sscbench.cli import RunOptions
    from sscbench.output import results
    from sscbench.stages import compare

    (folder,) = (ROOT / "docs" / "runs" / workload / "compare-replicates").iterdir()
    records = sorted((results.load(p, results.ReplicateRecord) for p in folder.glob("replicate-*.json")),
                     key=lambda r: r.index)
    assert [r.index for r in records] == list(range(len(records)))
    opts = RunOptions(workload=workload, storage=None, spec_file=None, out=Path("unused"), device=None,
                      threads=None, workers=None, cpu_kernels=None)
    spec = opts.spec(compare={"replicates": "auto", "min_replicates": low, "max_replicates": high})
    return records, *compare.sequential_state(spec, records, "baseline", "ssc", 1, len(records) == high)


def expected_tables(workload: str, low: int, high: int) -> str:
    """The markdown the committed records of ``workload``'s comparison give (replicates, then looks)."""
    from sscbench.output import render

    records, decided, both, diffs = committed_comparison(workload, low, high)
    assert [r.index for r in both] == [r.index for r in records], "every replicate trained both arms"
    lines = ["| replicate | test data | baseline | ssc | ssc \u2212 baseline | CPU |", "|---|---|---|---|---|---|"]
    for record, diff in zip(records, diffs, strict=True):
        arms = {a.name: a.score for a in record.arms}
        data = "the archive's split" if record.index == 0 else f"resample, data seed {record.data_seed}"
        cpu = f"family {record.cpu.family} model {record.cpu.model}, {record.cpu.torch_kernels}"
        lines.append(f"| {record.index} | {data} | {render.pct(arms['baseline'])} | {render.pct(arms['ssc'])} | "
                     f"{_signed(diff)} | {cpu} |")
    if decided.looks:
        lines += ["", "| look at | mean ssc \u2212 baseline | repeated 95% CI | state |", "|---|---|---|---|"]
        for look in decided.looks:
            last = look is decided.looks[-1]
            state = (decided.decision if decided.decision is not None else "undecided") if last else "went on"
            lines.append(f"| {WORDS[look.n]} | {_signed(look.mean_diff)} | "
                         f"[{_signed(look.rci_low)}, {_signed(look.rci_high)}] | {state} |")
    return "\n".join(lines)


@pytest.mark.parametrize("workload", ["ucr-crop", "ucr-electricdevices", "ucr-forda"])
def test_the_tables_of_an_archive_comparison_are_its_committed_records(workload):
    text = (ROOT / "docs" / "workloads.md").read_text()
    low, high = _design(text)
    tables = expected_tables(workload, low, high)
    assert f"\n{tables}\n" in text, f"docs/workloads.md should show {workload}'s tables as:\n\n{tables}\n"


@pytest.mark.parametrize("workload", ["ucr-crop", "ucr-electricdevices", "ucr-forda"])
def test_an_archive_comparisons_own_output_is_committed_once_it_ended_and_says_what_its_records_give(workload):
    """A finished comparison's own `compare.json` is committed beside its replicates, and its sequential
    verdict, looks and differences are those the committed records give; a comparison still under way has none."""
    from sscbench.output import results

    low, high = _design((ROOT / "docs" / "workloads.md").read_text())
    records, decided, both, diffs = committed_comparison(workload, low, high)
    output = ROOT / "docs" / "runs" / workload / "compare.json"
    if decided.decision is None:
        assert not output.exists(), f"{workload}'s comparison is undecided over its records, yet has a compare.json"
        return
    assert output.exists(), f"{workload}'s comparison ended ({decided.decision}): commit its compare.json"
    saved = results.load(output, results.CompareResult)
    assert (saved.spec.compare.min_replicates, saved.spec.compare.max_replicates) == (low, high)
    (comparison,) = saved.comparisons
    assert (comparison.arm, comparison.reference) == ("ssc", "baseline")
    assert comparison.replicate_indices == [r.index for r in both]
    assert comparison.diffs == pytest.approx(list(diffs), abs=1e-12)
    sequential = comparison.sequential
    assert (sequential.decision, sequential.replicates_used) == (decided.decision, len(both))
    assert [look.n for look in sequential.looks] == [look.n for look in decided.looks]
    for saved_look, look in zip(sequential.looks, decided.looks, strict=True):
        assert [saved_look.mean_diff, saved_look.rci_low, saved_look.rci_high] == \
            pytest.approx([look.mean_diff, look.rci_low, look.rci_high], abs=1e-9), look.n
