"""`sscbench compare` end to end at tiny sizes: derivation, statistics, reuse, resume and refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import once
from typer.testing import CliRunner

from sscbench.cli import app
from sscbench.output import plot, results
from sscbench.output.results import CompareResult, EvaluateResult, ReplicateRecord
from sscbench.stages import compare, evaluation
from sscbench.stats import replicates as replicate_stats

runner = CliRunner()
TINY = ("--seeds", 2, "--trials", 2, "--tune-epochs", 1, "--epochs", 1)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def load(out) -> CompareResult:
    return results.load(out / "compare.json", CompareResult)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The issue's tiny compare: two replicates of baseline and ssc (computed once for all xdist workers;
    tests that change files copy them first)."""
    return once(tmp_path_factory, "compare-tiny",
                lambda out: ok("compare", "--arms", "baseline,ssc", "--replicates", 2, *TINY, "--out", out).output)


def test_tiny_compare_writes_everything_derived_from_the_replicate_index(tiny):
    out, output = tiny
    result = load(out)
    assert (out / "compare.png").stat().st_size > 10_000
    assert "Replicated comparison" in output and "wrote" in output
    assert [r.index for r in result.replicates] == [0, 1]
    assert [r.data_seed for r in result.replicates] == [42, 43]
    assert [r.sampler_seed for r in result.replicates] == [0, 1]
    assert [r.model_seeds for r in result.replicates] == [[0, 1], [2, 3]]
    assert [r.tune_model_seed for r in result.replicates] == [0, 2]
    for rec in result.replicates:
        assert [p.regularizer for p in rec.tuning] == ["baseline", "ssc"]
        assert all(p.tuned_in == rec.index and p.data_seed == rec.data_seed for p in rec.tuning)
        assert all(p.trials_complete == 2 for p in rec.tuning)
        # 2 trials x 1 epoch per plugin, then 2 configurations x 2 seeds x 1 epoch
        assert rec.model_epochs == 2 * 2 + 2 * 2
        assert rec.cpu.simd and rec.cpu.torch_kernels
        for arm in rec.arms:
            assert len(arm.test_accuracy) == 2
            assert arm.params == next(p.params for p in rec.tuning if p.regularizer == arm.regularizer)
    # new data per replicate: the two replicates' training sets differ
    assert result.replicates[0].arms[0].test_accuracy != result.replicates[1].arms[0].test_accuracy
    assert set(result.derivation) == {"data_seed", "sampler_seed", "tune_model_seed", "model_seeds"}
    assert "tuning run" in result.covers and result.provenance.cpu is not None
    files = sorted((out / "compare-replicates" / result.key).iterdir())
    assert [f.name for f in files] == ["replicate-0.json", "replicate-1.json"]


def test_json_statistics_agree_with_a_recomputation_from_its_own_replicates(tiny):
    out, _ = tiny
    raw = json.loads((out / "compare.json").read_text())
    matrix = {}
    for rec in raw["replicates"]:
        for arm in rec["arms"]:
            matrix.setdefault(arm["name"], []).append([np.nan if v is None else v for v in arm["test_accuracy"]])
    (stored,) = raw["comparisons"]
    again = replicate_stats.compare("ssc", np.array(matrix["ssc"]), "baseline", np.array(matrix["baseline"]))
    assert stored == json.loads(again.model_dump_json())
    scores = {name: np.array(m).mean(1) for name, m in matrix.items()}
    assert stored["diffs"] == pytest.approx(list(scores["ssc"] - scores["baseline"]), abs=1e-15)
    by_name = {a["name"]: a for a in raw["arms"]}
    assert by_name["ssc"]["scores"] == pytest.approx(list(scores["ssc"]), abs=1e-15)


def test_replicate_zero_is_the_protocol_and_equals_reproduce(tmp_path, tiny):
    out, _ = tiny
    ok("reproduce", *TINY, "--out", tmp_path)
    reproduced = results.load(tmp_path / "evaluate.json", EvaluateResult)
    rep0 = load(out).replicates[0]
    for arm in reproduced.arms:
        twin = next(a for a in rep0.arms if a.name == arm.name)
        assert twin.params == arm.params and twin.test_accuracy == arm.test_accuracy  # bit for bit

    # A comparison in reproduce's folder reads replicate 0's tuning studies and evaluation units (the same
    # studies: units are named after the arms' parameters, not after the results file they were read from)
    tuned = {r: results.load(tmp_path / f"tune-{r}.json", results.TuneResult) for r in ("baseline", "ssc")}
    before = trials_per_study(tmp_path / "optuna.db")
    ok("compare", "--arms", "baseline,ssc", "--replicates", 1, *TINY, "--out", tmp_path)
    shared = load(tmp_path).replicates[0]
    assert {p.regularizer: p.study_name for p in shared.tuning} == {
        r: t.studies[0].study_name for r, t in tuned.items()}
    after = trials_per_study(tmp_path / "optuna.db")
    assert after == before  # no study was added and none grew: nothing trained
    assert shared.arms == rep0.arms


def trials_per_study(db) -> dict[str, int]:
    import optuna

    return {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(f"sqlite:///{db}")}


def test_more_replicates_reuse_the_finished_ones(tmp_path, tiny):
    out, _ = tiny
    first = load(out)
    # a second folder holding only replicate 0's checkpoint, asked for two replicates
    key_dir = tmp_path / "compare-replicates" / first.key
    key_dir.mkdir(parents=True)
    (key_dir / "replicate-0.json").write_bytes((out / "compare-replicates" / first.key / "replicate-0.json")
                                               .read_bytes())
    ok("compare", "--arms", "baseline,ssc", "--replicates", 2, *TINY, "--out", tmp_path)
    grown = load(tmp_path)
    assert grown.reused_replicates == [0]
    assert grown.replicates[0] == first.replicates[0]
    assert [a.test_accuracy for a in grown.replicates[1].arms] == [a.test_accuracy for a in first.replicates[1].arms]
    assert grown.comparisons == first.comparisons


def test_an_interrupted_compare_resumes_to_the_same_numbers(tmp_path, monkeypatch, tiny):
    out, _ = tiny
    # units are evaluated in regularizer order: call 3 is replicate 1's first unit
    real = evaluation.evaluate_unit
    calls = {"n": 0}

    def crash_in_second_replicate(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_unit", crash_in_second_replicate)
    assert invoke("compare", "--replicates", 2, *TINY, "--out", tmp_path).exit_code != 0
    assert not (tmp_path / "compare.json").exists()
    monkeypatch.setattr(evaluation, "evaluate_unit", real)
    ok("compare", "--replicates", 2, *TINY, "--out", tmp_path)
    resumed, whole = load(tmp_path), load(out)
    assert resumed.reused_replicates == [0]
    assert [[a.test_accuracy for a in r.arms] for r in resumed.replicates] == \
        [[a.test_accuracy for a in r.arms] for r in whole.replicates]
    assert resumed.comparisons == whole.comparisons


def test_tune_once_reuses_the_first_replicates_picks_and_says_so(tmp_path):
    ok("compare", "--replicates", 2, "--first-replicate", 100, "--tune", "once", "--ablations", *TINY,
       "--out", tmp_path)
    result = load(tmp_path)
    r100, r101 = result.replicates
    assert (r100.data_seed, r101.data_seed, r101.model_seeds) == (142, 143, [202, 203])
    assert r100.tuning == r101.tuning and all(p.tuned_in == 100 for p in r101.tuning)
    assert r101.model_epochs == 3 * 2 * 1  # evaluation only: baseline, ssc and ssc-off, 2 seeds, 1 epoch
    assert "tuning run is fixed" in result.covers
    for rec in result.replicates:
        arms = {a.name: a for a in rec.arms}
        off, ssc = arms["ssc-off"], arms["ssc"]
        assert (off.params["lr"], off.params["weight_decay"]) == (ssc.params["lr"], ssc.params["weight_decay"])
        assert off.regularizer == "baseline"
    assert {c.arm for c in result.comparisons} == {"ssc", "ssc-off"}


def test_arms_with_explicit_params_are_not_tuned(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[[evaluate.arms]]\nname = "baseline"\nregularizer = "baseline"\n'
                    'params = { lr = 5e-3, weight_decay = 1e-3 }\n'
                    '[[evaluate.arms]]\nname = "ssc"\nregularizer = "ssc"\n')
    ok("compare", "--spec", spec, "--replicates", 1, *TINY, "--out", tmp_path / "out")
    (rec,) = load(tmp_path / "out").replicates
    assert [p.regularizer for p in rec.tuning] == ["ssc"]
    assert rec.arms[0].params_source == "spec"


def test_report_rerenders_a_comparison(tiny, tmp_path):
    out, _ = tiny
    (tmp_path / "compare.json").write_bytes((out / "compare.json").read_bytes())  # the shared run is left alone
    res = ok("report", "--out", tmp_path)
    assert "Replicated comparison" in res.output and (tmp_path / "compare.png").stat().st_size > 10_000


def test_the_figure_draws_an_interval_that_misses_its_point_by_rounding(tiny, tmp_path):
    """Wilson's interval at P = 1 over 10 replicates ends at 0.9999999999999999, below P itself: matplotlib
    refuses a negative error bar, which once stopped a study after its first workload's compare.json."""
    out, _ = tiny
    low, high = replicate_stats.wilson_interval(1.0, 10)
    assert high < 1.0  # the rounding this test is about
    result = load(out)
    rounded = result.comparisons[0].model_copy(update={
        "p_outperform": 1.0, "p_outperform_ci_low": low, "p_outperform_ci_high": high,
        "ci_low": result.comparisons[0].mean_diff + 1e-17})  # a bootstrap interval beside its mean, likewise
    result = result.model_copy(update={"comparisons": [rounded]})
    plot.save_compare_figure(result, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert plot._bar(1.0, low, high).tolist() == [[pytest.approx(1.0 - low)], [0.0]]
    assert np.allclose(plot._bar([0.5, 0.2], [0.4, 0.1], [0.7, 0.3]), [[0.1, 0.1], [0.2, 0.1]])

@pytest.mark.parametrize(("args", "needle"), [
    (("--tune", "sometimes"), "compare.tune"),
    (("--gamma", "0.4"), "compare.gamma"),
    (("--replicates", "0"), "compare.replicates"),
    (("--first-replicate", str(2**32 - 42)), "data.seed"),
    (("--arms", "baseline,scc"), "scc"),
    (("--reference", "nope"), "nope"),
])
def test_refusals_name_the_problem_and_write_nothing(tmp_path, args, needle):
    res = invoke("compare", *args, *TINY, "--out", tmp_path / "out")
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_several_studies_per_replicate_are_refused(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text("[tune]\nstudies = 2\n")
    res = invoke("compare", "--spec", spec, *TINY, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "tune.studies" in res.output


def test_a_checkpoint_of_other_settings_is_refused(tmp_path, tiny):
    out, _ = tiny
    first = load(out)
    wrong = tmp_path / "compare-replicates" / first.key / "replicate-0.json"
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes((out / "compare-replicates" / first.key / "replicate-1.json").read_bytes())
    res = invoke("compare", "--replicates", 1, *TINY, "--out", tmp_path)
    assert res.exit_code == 2 and "replicate-0.json" in res.output and "holds replicate 1" in res.output


def test_key_ignores_what_does_not_change_a_replicate():
    from sscbench.spec import build_spec

    base = build_spec()
    same = build_spec(overrides={"compare": {"replicates": 3, "gamma": 0.9}, "evaluate": {"reference": "ssc"},
                                 "train": {"threads": 1, "workers": 2}})
    other = build_spec(overrides={"evaluate": {"epochs": 3}})
    once = build_spec(overrides={"compare": {"tune": "once"}})
    once_elsewhere = build_spec(overrides={"compare": {"tune": "once", "first_replicate": 5}})
    assert compare.key(base) == compare.key(same)
    assert len({compare.key(s) for s in (base, other, once, once_elsewhere)}) == 4


def test_evaluate_says_what_its_verdict_covers(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[[evaluate.arms]]\nname = "baseline"\nregularizer = "baseline"\n'
                    'params = { lr = 5e-3, weight_decay = 1e-3 }\n'
                    '[[evaluate.arms]]\nname = "b2"\nregularizer = "baseline"\n'
                    'params = { lr = 4e-3, weight_decay = 1e-3 }\n')
    res = ok("evaluate", "--spec", spec, "--seeds", 2, "--epochs", 1, "--out", tmp_path)
    assert "sscbench compare" in " ".join(res.output.split())
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    assert result.covers.startswith("model seeds only") and result.provenance.cpu.vendor


def test_forced_avx2_kernels_are_recorded(tmp_path):
    if "avx2" not in open("/proc/cpuinfo").read():
        pytest.skip("this CPU has no AVX2")
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-m", "sscbench.cli", "tune", "baseline", "--trials", "1", "--epochs", "1",
                    "--cpu-kernels", "avx2", "--out", str(out)], check=True, capture_output=True)
    prov = json.loads((out / "tune-baseline.json").read_text())["provenance"]["cpu"]
    assert prov["torch_kernels"] == "AVX2" and prov["kernel_env"] == "avx2"


def test_replicate_records_are_versioned_checkpoints(tiny):
    out, _ = tiny
    key = load(out).key
    rec = results.load(out / "compare-replicates" / key / "replicate-1.json", ReplicateRecord)
    assert rec.kind == "replicate" and rec.index == 1 and rec.key == key


def test_stored_work_is_keyed_by_the_code_that_computed_it(monkeypatch):
    from sscbench.contracts import registry
    from sscbench.spec import build_spec

    base = registry.code_fingerprint(["baseline", "ssc"])
    assert base == registry.code_fingerprint(["ssc", "baseline", "ssc"])  # a set: order and repeats do not count
    assert base != registry.code_fingerprint(["baseline", "gradnorm"])  # another plugin's source
    assert base != registry.code_fingerprint(["baseline", "ssc"], ["mnist1d-mlp"])  # and the workload's
    key = compare.key(build_spec())
    monkeypatch.setattr(registry, "code_fingerprint", lambda *names: "edited")  # as if a module had changed
    assert compare.key(build_spec()) != key


def test_only_modules_that_present_results_are_left_out_of_the_fingerprint():
    """Editing the command line, a table, a figure, the page, an export or the study's matrix keeps stored work;
    the presentation modules exist, and none of the modules that compute results imports one of them at the top."""
    import ast
    from pathlib import Path

    from sscbench.contracts import registry

    package = Path(registry.__file__).resolve().parents[1]
    presented = {f"sscbench.{m[:-3].replace('/', '.')}" for m in registry.PRESENTATION}
    assert all((package / m).exists() for m in registry.PRESENTATION)
    hashed = {p.relative_to(package).as_posix() for p in registry.fingerprinted()}
    assert not hashed & set(registry.PRESENTATION)
    assert {"engine/trainer.py", "stages/compare.py", "output/results.py", "spec.py"} <= hashed
    for path in package.rglob("*.py"):
        if path.relative_to(package).as_posix() in registry.PRESENTATION:
            continue
        for node in ast.parse(path.read_text()).body:  # module level: what runs whenever results are computed
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module \
                else []
            assert not any(n in presented or n.rsplit(".", 1)[0] in presented for n in names), (path, names)
