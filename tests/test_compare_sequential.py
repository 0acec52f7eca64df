"""`sscbench compare --replicates auto` end to end at tiny sizes: decisions, dropped arms, resume, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import invoke, ok, once

from sscbench.output import results
from sscbench.output.results import CompareResult
from sscbench.stages import compare
from sscbench.stats import sequential as sq

AUTO = ("--replicates", "auto", "--min-replicates", 3, "--max-replicates", 6, "--seeds", 2, "--epochs", 2)
#: baseline and its twin (the same fixed hyperparameters), an arm that cannot learn, and ssc at fixed values
ARMS = {
    "baseline": 'regularizer = "baseline"\nparams = { lr = 5e-3, weight_decay = 1e-3 }',
    "twin": 'regularizer = "baseline"\nparams = { lr = 5e-3, weight_decay = 1e-3 }',
    "frozen": 'regularizer = "baseline"\nparams = { lr = 1e-9, weight_decay = 0.0 }',
    "ssc": 'regularizer = "ssc"\nparams = { lr = 5e-3, weight_decay = 1e-3, lambda_ssc = 0.05 }',
    "late": 'regularizer = "baseline"\nfrom = "frozen"\noverride = { lr = 5e-3 }',  # frozen's values, but it learns
}


def spec_of(*names: str, **params: str) -> str:
    """A spec file's arms: those of ``ARMS`` named, in order (``params`` replaces an arm's params)."""
    blocks = []
    for name in names:
        body = ARMS[name] if name not in params else ARMS[name].split("\nparams")[0] + f"\nparams = {params[name]}"
        blocks.append(f'[[evaluate.arms]]\nname = "{name}"\n{body}\n')
    return "".join(blocks)


SPEC = spec_of("baseline", "twin", "frozen", "ssc", "late")


def load(out) -> CompareResult:
    return results.load(out / "compare.json", CompareResult)


def copy_checkpoints(out, to, keep=lambda index: True):
    """The checkpoints of the run in ``out`` whose replicate index ``keep`` accepts, copied into ``to``."""
    for path in (out / "compare-replicates").rglob("replicate-*.json"):
        if keep(int(path.stem.split("-")[1])):
            target = to / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())


@pytest.fixture(scope="module")
def auto(tmp_path_factory):
    """The auto run every test here reads (computed once for all xdist workers; copied before any change)."""
    def make(root):
        (root / "spec.toml").write_text(SPEC)
        return ok("compare", "--spec", root / "spec.toml", *AUTO, "--out", root / "out").output

    root, output = once(tmp_path_factory, "compare-auto", make)
    return root / "spec.toml", root / "out", output


def recompute(c, result: CompareResult) -> sq.Sequential:
    s = result.spec.compare
    return sq.sequential(c.diffs + c.after_stop, min_n=s.min_replicates, max_n=s.max_replicates,
                         margin=s.margin / 100, comparisons=c.sequential.comparisons, batch=s.batch, gamma=s.gamma,
                         margin_points=s.margin, complete=True, p_star=c.sequential.p_star)


def test_identical_arms_end_equivalent_and_an_arm_that_cannot_learn_worse_at_the_first_look(auto):
    _, out, output = auto
    result = load(out)
    comps = {c.arm: c for c in result.comparisons}
    assert set(comps) == {"twin", "frozen", "ssc", "late"}
    twin, frozen = comps["twin"].sequential, comps["frozen"].sequential
    assert (twin.decision, twin.replicates_used, twin.rci_low, twin.rci_high) == ("equivalent", 3, 0.0, 0.0)
    assert (frozen.decision, frozen.replicates_used) == ("worse", 3) and frozen.rci_high < 0
    assert comps["twin"].verdict == "equivalent" and comps["frozen"].verdict == "worse"
    for seq in (twin, frozen):
        assert seq.comparisons == 4 and seq.alpha_per_comparison == pytest.approx(0.05 / 4)
        assert seq.margin == 0.005 and (seq.min_replicates, seq.max_replicates) == (3, 6)
        assert 0 < seq.p_star < seq.alpha_per_comparison and seq.looks[0].n == 3
    assert "Sequential decisions" in output and "equivalent" in output and "worse" in output


def test_decided_arms_stop_costing_compute_and_the_run_ends_when_all_have_decided(auto):
    _, out, _ = auto
    result = load(out)
    used = max(c.sequential.replicates_used for c in result.comparisons)
    assert len(result.replicates) == max(3, used)  # not one replicate more than needed
    assert len(result.replicates) > 3  # some comparison stayed open past the first look
    for rec in result.replicates:
        before = [r for r in result.replicates if r.index < rec.index]
        still = compare.open_arms(result.spec, before, "baseline", 4) if rec.index >= 3 else list(ARMS)[1:]
        assert [a.name for a in rec.arms] == [n for n in ARMS if n == "baseline" or n in still]
        assert rec.not_trained == [n for n in ARMS if n != "baseline" and n not in still]
    late = next(r for r in result.replicates if r.index == 3)
    assert "frozen" in late.not_trained and "twin" in late.not_trained  # decided at 3: not trained again,
    if "late" in [a.name for a in late.arms]:  # though 'late' still takes frozen's hyperparameters
        assert next(a for a in late.arms if a.name == "late").params["weight_decay"] == 0.0


def test_the_sequential_records_agree_with_a_recomputation_from_their_own_differences(auto):
    _, out, _ = auto
    result = load(out)
    raw = json.loads((out / "compare.json").read_text())
    for c, doc in zip(result.comparisons, raw["comparisons"], strict=True):
        assert recompute(c, result) == c.sequential
        seq = doc["sequential"]
        for field in ("decision", "replicates_used", "rci_low", "rci_high", "margin", "alpha", "alpha_per_comparison",
                      "min_replicates", "max_replicates", "p_star", "looks"):
            assert field in seq
        assert all(set(look) == {"n", "mean_diff", "rci_low", "rci_high"} for look in seq["looks"])
        scores = {r.index: {a.name: a.score for a in r.arms} for r in result.replicates}
        assert c.diffs == pytest.approx([scores[r][c.arm] - scores[r]["baseline"] for r in c.replicate_indices])
        assert seq["looks"][-1]["mean_diff"] == pytest.approx(np.mean(c.diffs[:seq["replicates_used"]]))


def test_an_interrupted_run_resumes_to_the_same_decisions_at_the_same_n(auto, tmp_path):
    spec, out, _ = auto
    first = load(out)
    copy = tmp_path / "out"
    last = max(r.index for r in first.replicates)
    copy_checkpoints(out, copy, lambda index: index != last)  # the run was cut during its last replicate
    ok("compare", "--spec", spec, *AUTO, "--out", copy)
    again = load(copy)
    assert again.reused_replicates == [r.index for r in first.replicates if r.index != last]
    assert [c.sequential for c in again.comparisons] == [c.sequential for c in first.comparisons]


def test_a_fixed_count_later_trains_the_arms_a_replicate_left_out(auto, tmp_path):
    spec, out, _ = auto
    first = load(out)
    assert len(first.replicates) > 3  # ssc stays open past the first look, so later replicates leave arms out
    copy = tmp_path / "out"
    copy_checkpoints(out, copy)
    ok("compare", "--spec", spec, "--replicates", 4, "--seeds", 2, "--epochs", 2, "--out", copy)
    fixed = load(copy)
    assert fixed.reused_replicates == [0, 1, 2]  # replicate 3 lacked twin and frozen: computed again
    assert [a.name for a in fixed.replicates[3].arms] == list(ARMS)
    assert all(c.sequential is None and c.verdict in sq.DECISIONS for c in fixed.comparisons)
    assert all("fixed replicates" in c.rule and c.margin == 0.005 for c in fixed.comparisons)
    assert {c.arm: c.verdict for c in fixed.comparisons}["twin"] == "equivalent"

    # Replicates finished past a stop (here: by the fixed run) are recorded and shown, never used.
    res = ok("compare", "--spec", spec, *AUTO, "--out", copy)
    again = load(copy)
    twin = next(c for c in again.comparisons if c.arm == "twin")
    assert twin.sequential == next(c for c in first.comparisons if c.arm == "twin").sequential
    assert len(twin.diffs) == 3 and twin.after_stop == [0.0] and twin.replicate_indices == [0, 1, 2]
    assert "+1 after the stop" in res.output and "(unused)" in res.output


def test_files_written_before_the_margin_still_load_and_render(auto, tmp_path):
    _, out, _ = auto
    raw = json.loads((out / "compare.json").read_text())
    raw["schema_version"] = 3
    for c in raw["comparisons"]:
        for field in ("margin", "rule", "replicate_indices", "left_out", "after_stop", "sequential"):
            del c[field]
        c["verdict"] = "no detectable difference"
    for r in raw["replicates"]:
        del r["not_trained"]
    for field in ("min_replicates", "max_replicates", "margin", "batch"):
        del raw["spec"]["compare"][field]
    raw["spec"]["compare"]["replicates"] = len(raw["replicates"])
    old = tmp_path / "old"
    old.mkdir()
    (old / "compare.json").write_text(json.dumps(raw))
    res = ok("report", "--out", old)
    assert "detectable" in res.output and "Sequential" not in res.output


def test_the_progress_says_how_many_comparisons_are_still_open(auto, tmp_path):
    spec, out, _ = auto
    first = load(out)
    assert len(first.replicates) > 3  # ssc stays open past the first look
    copy = tmp_path / "out"
    copy_checkpoints(out, copy, lambda index: index < 3)
    labels = []
    from sscbench.contracts import task

    run = task.resolve_run(first.spec)
    compare.run(run, copy, progress=compare.Progress(on_stage=lambda label, done, total: labels.append(label)))
    still = compare.open_arms(first.spec, first.replicates[:3], "baseline", 4)
    assert f"replicate 3: evaluate ({len(still)} of 4 comparisons open)" in labels and "ssc" in still


@pytest.mark.parametrize(("args", "needle"), [
    (("--replicates", "sometimes"), "--replicates"),
    (("--replicates", "auto", "--min-replicates", "1"), "min_replicates"),
    (("--replicates", "auto", "--min-replicates", "8", "--max-replicates", "6"), "max_replicates (6)"),
    (("--replicates", "auto", "--margin", "0"), "compare.margin"),
    (("--replicates", "auto", "--batch", "0"), "compare.batch"),
    (("--replicates", "auto", "--arms", "ssc"), "reference arm"),
])
def test_bad_sequential_settings_are_refused_by_name_and_write_nothing(tmp_path, args, needle):
    res = invoke("compare", *args, "--seeds", 2, "--trials", 2, "--tune-epochs", 1, "--epochs", 1,
                 "--out", tmp_path / "out")
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_the_calibration_is_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("SSCBENCH_CACHE", str(tmp_path))
    first = compare.p_star(3, 6, 0.05)
    cached = json.loads((tmp_path / "sequential-p-star.json").read_text())
    assert list(cached.values()) == [first]
    monkeypatch.setattr(sq, "calibrate_p_star", lambda *a: pytest.fail("recomputed"))
    assert compare.p_star(3, 6, 0.05) == first


def test_a_corrupt_or_unwritable_calibration_cache_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SSCBENCH_CACHE", str(tmp_path))
    expected = sq.calibrate_p_star(3, 6, 0.05)
    path = tmp_path / "sequential-p-star.json"
    for damaged in ("{not json", "[1, 2]", json.dumps({"3,6,0.05,200000,20260101": "x"})):
        path.write_text(damaged)
        assert compare.p_star(3, 6, 0.05) == expected
        assert list(json.loads(path.read_text()).values())[-1] == expected  # replaced by a good one
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SSCBENCH_CACHE", str(blocker / "cache"))  # no folder can be made there, even by root
    assert compare.p_star(3, 6, 0.05) == expected  # nothing could be written: computed, no error
    assert blocker.read_text() == ""


def test_alpha_is_split_over_every_workloads_comparisons(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_of("baseline", "twin"))
    ok("compare", "--spec", spec, "--workloads", "mnist1d-mlp,mnist1d-shuffled", "--replicates", "auto",
       "--min-replicates", 2, "--max-replicates", 2, "--seeds", 2, "--epochs", 1, "--out", tmp_path / "out")
    both = results.load(tmp_path / "out" / "compare-workloads.json", results.WorkloadsCompareResult)
    for result in both.results:
        (twin,) = result.comparisons
        assert twin.sequential.comparisons == 2 and twin.sequential.alpha_per_comparison == 0.025
        assert (twin.sequential.decision, twin.sequential.replicates_used) == ("equivalent", 2)


def test_an_arm_that_diverges_every_time_is_said_and_stops_costing_compute(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_of("baseline", "twin", twin="{ lr = 1e10, weight_decay = 1e-3 }"))
    res = ok("compare", "--spec", spec, "--replicates", "auto", "--min-replicates", 2, "--max-replicates", 5,
             "--seeds", 2, "--epochs", 1, "--out", tmp_path / "out")
    result = load(tmp_path / "out")
    assert len(result.replicates) == 2  # no difference to decide on in 2 replicates: not trained further
    assert all(a.diverged == [0, 1] or a.diverged == [2, 3] for r in result.replicates for a in r.arms
               if a.name == "twin")
    assert result.comparisons == [] and "diverged" in res.output
