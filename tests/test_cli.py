"""The CLI end to end at tiny sizes: every command, resume, report, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import invoke, ok, small_data

from sscbench import files
from sscbench.output import results
from sscbench.output.results import EvaluateResult, TuneResult
from sscbench.stages import tuning

SEED_SPEC = """
[evaluate]
seeds = 5
epochs = 30

[[evaluate.arms]]
name = "baseline"
regularizer = "baseline"
params = { lr = 9.53e-3, weight_decay = 1.62e-4 }

[[evaluate.arms]]
name = "ssc"
regularizer = "ssc"
params = { lr = 6.28e-3, weight_decay = 1.65e-2, lambda_ssc = 1.73e-3 }
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_help_shows_examples():
    out = ok("--help").output
    assert "sscbench tune ssc" in out and "sscbench reproduce" in out
    for command in ("tune", "evaluate", "reproduce", "report", "plugins"):
        assert "Example" in ok(command, "--help").output or command == "plugins"


def test_plugins_lists_builtins():
    out = ok("plugins").output
    assert "baseline" in out and "ssc" in out and "lambda_ssc" in out and "sscbench" in out


def test_tune_writes_results_with_every_trial(tmp_path):
    ok("tune", "ssc", "--trials", 3, "--epochs", 1, "--round-size", 2, "--out", tmp_path)
    result = results.load(tmp_path / "tune-ssc.json", TuneResult)
    study = result.studies[0]
    assert [t.state for t in study.trials] == ["COMPLETE"] * 3
    assert result.best.value == max(t.value for t in study.trials)
    assert set(result.best.params) == {"lr", "weight_decay", "lambda_ssc"}
    assert set(result.search_space) == {"lr", "weight_decay", "lambda_ssc"}
    assert result.spec.tune.trials == 3 and result.spec.tune.epochs == 1
    assert result.provenance.torch and result.provenance.wall_seconds > 0
    assert (tmp_path / "optuna.db").exists()


def test_tune_resumes_to_the_exact_total(tmp_path):
    ok("tune", "baseline", "--trials", 2, "--epochs", 1, "--out", tmp_path)
    ok("tune", "baseline", "--trials", 5, "--epochs", 1, "--round-size", 2, "--out", tmp_path)
    trials = results.load(tmp_path / "tune-baseline.json", TuneResult).studies[0].trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state == "COMPLETE" for t in trials)


def test_an_interrupted_study_resumes_to_the_same_trials_as_an_uninterrupted_one(tmp_path, monkeypatch):
    args = ("tune", "baseline", "--trials", 6, "--epochs", 1, "--round-size", 2)
    ok(*args, "--out", tmp_path / "whole")
    whole = results.load(tmp_path / "whole" / "tune-baseline.json", TuneResult).studies[0].trials

    real = tuning.train_stack
    calls = {"n": 0}

    def crash_on_second_round(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-round
        return real(*a, **kw)

    monkeypatch.setattr(tuning, "train_stack", crash_on_second_round)
    interrupted = invoke(*args, "--out", tmp_path / "cut")
    assert interrupted.exit_code != 0
    storage = f"sqlite:///{(tmp_path / 'cut' / 'optuna.db').resolve()}"
    (summary,) = optuna.get_all_study_summaries(storage)
    before = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert [t.state.name for t in before] == ["COMPLETE", "COMPLETE", "RUNNING", "RUNNING"]

    monkeypatch.setattr(tuning, "train_stack", real)
    ok(*args, "--out", tmp_path / "cut")
    resumed = results.load(tmp_path / "cut" / "tune-baseline.json", TuneResult).studies[0].trials
    # The cut round trains again with its own hyperparameters, and the sampler goes on from the state
    # it had after asking that round: the same trials, values and states as without the interruption.
    assert [(t.number, t.state, t.params, t.value) for t in resumed] == \
        [(t.number, t.state, t.params, t.value) for t in whole]

def test_evaluate_with_the_seed_spec_file(tmp_path):
    spec = write(tmp_path, SEED_SPEC)
    out = tmp_path / "out"
    res = ok("evaluate", "--spec", spec, "--seeds", 2, "--epochs", 1, "--out", out)
    assert "baseline" in res.output and "±" in res.output
    result = results.load(out / "evaluate.json", EvaluateResult)
    assert (out / "evaluate.png").stat().st_size > 1000
    base, ssc = result.arms
    assert base.params == {"lr": 9.53e-3, "weight_decay": 1.62e-4}
    assert ssc.params["lambda_ssc"] == 1.73e-3 and ssc.params_source == "spec" and ssc.defaults_used == []
    for arm in result.arms:
        acc = np.array(arm.test_accuracy)
        assert arm.seeds == [0, 1] and len(arm.curves.test_accuracy[0]) == 1
        assert arm.mean == pytest.approx(acc.mean()) and arm.std == pytest.approx(acc.std(ddof=0))
        assert arm.std_ddof1 == pytest.approx(acc.std(ddof=1))
        assert arm.curves.test_accuracy[0][-1] == arm.test_accuracy[0]
    assert result.spec.evaluate.seeds == 2  # the option overrode the file


def test_params_may_omit_the_plugin_hyperparameters(tmp_path):
    spec = write(tmp_path, '[[evaluate.arms]]\nname = "ssc"\nregularizer = "ssc"\n'
                           'params = { lr = 1e-3, weight_decay = 1e-4 }\n')
    ok("evaluate", "--spec", spec, "--seeds", 1, "--epochs", 1, "--out", tmp_path)
    (arm,) = results.load(tmp_path / "evaluate.json", EvaluateResult).arms
    assert arm.defaults_used == ["lambda_ssc"] and arm.params["lambda_ssc"] == 1e-3


def test_evaluate_reads_tuned_hyperparameters(tmp_path):
    ok("tune", "baseline", "--trials", 2, "--epochs", 1, "--out", tmp_path)
    ok("evaluate", "--arms", "baseline", "--seeds", 2, "--epochs", 1, "--out", tmp_path)
    tuned = results.load(tmp_path / "tune-baseline.json", TuneResult)
    (arm,) = results.load(tmp_path / "evaluate.json", EvaluateResult).arms
    assert arm.params == tuned.best.params and arm.params_source.startswith("tuned:")


def test_reproduce_runs_the_whole_protocol_at_a_tiny_size(tmp_path):
    ok("reproduce", "--trials", 2, "--tune-epochs", 1, "--seeds", 2, "--epochs", 1, "--studies", 2, "--out", tmp_path)
    for name in ("tune-baseline.json", "tune-ssc.json", "evaluate.json", "evaluate.png"):
        assert (tmp_path / name).exists()
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    assert [a.name for a in result.arms] == ["baseline", "ssc"]
    assert all(len(a.tuning_spread.configs) == 2 for a in result.arms)


def test_report_rerenders_from_saved_files(tmp_path):
    spec = write(tmp_path, SEED_SPEC)
    ok("evaluate", "--spec", spec, "--seeds", 2, "--epochs", 1, "--out", tmp_path)
    (tmp_path / "evaluate.png").unlink()
    before = (tmp_path / "evaluate.json").read_text()
    out = ok("report", "--out", tmp_path).output
    assert "baseline" in out and "ssc" in out and (tmp_path / "evaluate.png").exists()
    assert (tmp_path / "evaluate.json").read_text() == before


# -- refusals: exit code 2, a message naming the problem, no traceback, nothing written ---------

REFUSED_SPECS = {
    "unknown key": ("[evaluate]\nseedz = 3\n", "evaluate.seedz"),
    "wrong type": ("[evaluate]\nseeds = 'five'\n", "evaluate.seeds"),
    "negative epochs": ("[evaluate]\nepochs = -1\n", "evaluate.epochs"),
    "no arms": ("[evaluate]\narms = []\n", "at least one arm"),
    "range low >= high": ("[tune.lr]\nlow = 1e-2\nhigh = 1e-4\n", "tune.lr"),
    "unknown hyperparameter": ('[[evaluate.arms]]\nname = "b"\nregularizer = "baseline"\n'
                               'params = { lr = 1e-3, weight_decay = 0.0, lambda_ssc = 1.0 }\n', "lambda_ssc"),
    "unknown plugin": ('[[evaluate.arms]]\nname = "x"\nregularizer = "scc"\n', "Did you mean 'ssc'"),
    "malformed TOML": ("[evaluate\nseeds = 3\n", "malformed TOML"),
    "zero workers": ("[train]\nworkers = 0\n", "train.workers"),
    "negative data seed": ("[data]\nseed = -1\n", "data.seed"),
    "model seed past int64": (f"[tune]\nmodel_seed = {2**64 + 1}\n", "tune.model_seed"),
    "sampler seeds past 2**32": (f"[tune]\nsampler_seed = {2**32 - 1}\nstudies = 2\n", "lower sampler_seed"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_SPECS))
def test_bad_specs_are_refused_before_training(tmp_path, case):
    text, expected = REFUSED_SPECS[case]
    spec = write(tmp_path, text)
    out = tmp_path / "out"
    res = invoke("evaluate", "--spec", spec, "--out", out)
    assert res.exit_code == 2, res.output
    assert expected in res.output
    assert "Traceback" not in res.output
    if case not in ("unknown hyperparameter", "unknown plugin"):
        assert str(spec) in res.output  # the message names the file
    assert not out.exists() or not any(out.iterdir())


def test_zero_workers_option_is_refused(tmp_path):
    res = invoke("evaluate", "--workers", 0, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "train.workers" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_missing_spec_file_is_refused(tmp_path):
    res = invoke("tune", "ssc", "--spec", tmp_path / "nope.toml", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "spec file not found" in res.output and not (tmp_path / "out").exists()


def test_option_values_are_validated_too(tmp_path):
    res = invoke("tune", "ssc", "--trials", 0, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "tune.trials" in res.output and not (tmp_path / "out").exists()


def test_unknown_plugin_for_tune_is_refused(tmp_path):
    res = invoke("tune", "scc", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "Did you mean 'ssc'" in res.output and "baseline" in res.output
    assert not (tmp_path / "out").exists()


def test_evaluate_without_tune_results_names_the_command_to_run(tmp_path):
    res = invoke("evaluate", "--seeds", 1, "--epochs", 1, "--out", tmp_path)
    assert res.exit_code == 2 and "sscbench tune baseline" in res.output
    assert list(tmp_path.iterdir()) == []


def test_cuda_without_cuda_is_refused(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    res = invoke("tune", "ssc", "--device", "cuda", "--out", tmp_path / "out")
    assert res.exit_code == 2 and "CUDA is not available" in res.output


def test_report_with_nothing_to_report(tmp_path):
    res = invoke("report", "--out", tmp_path)
    assert res.exit_code == 2 and "no results" in res.output


def test_results_of_unknown_version_or_schema_are_refused(tmp_path):
    spec = write(tmp_path, SEED_SPEC)
    ok("evaluate", "--spec", spec, "--seeds", 1, "--epochs", 1, "--out", tmp_path)
    path = tmp_path / "evaluate.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps(raw | {"schema_version": 99}))
    res = invoke("report", "--out", tmp_path)
    assert res.exit_code == 2 and "schema_version 99" in res.output
    path.write_text(json.dumps(raw | {"arms": "not a list"}))
    res = invoke("report", "--out", tmp_path)
    assert res.exit_code == 2 and "does not match" in res.output
    path.write_text(json.dumps(raw)[:100])  # a truncated file
    res = invoke("report", "--out", tmp_path)
    assert res.exit_code == 2 and "not valid JSON" in res.output


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text("old")

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(OSError):
        results.write_atomic(target, "new content")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_check_plugin_passes_for_builtins_and_refuses_unknown_names():
    out = ok("check-plugin", "ssc").output
    assert "FAIL" not in out and out.count("pass") == 6 * 7  # every check on the seven built-in workloads
    res = invoke("check-plugin", "scc")
    assert res.exit_code == 2 and "Did you mean 'ssc'" in res.output


def test_every_builtin_plugin_end_to_end(tmp_path):
    arms = "baseline,ssc,gradnorm,spatial,jacobian,labelsmooth"
    small = small_data(tmp_path)
    ok("reproduce", "--arms", arms, *small, "--trials", 1, "--tune-epochs", 1, "--seeds", 2, "--epochs", 1,
       "--out", tmp_path)
    for plugin in arms.split(","):
        assert (tmp_path / f"tune-{plugin}.json").exists()
    ok("evaluate", "--arms", arms, *small, "--seeds", 2, "--epochs", 1, "--out", tmp_path)
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    assert [a.name for a in result.arms] == arms.split(",")
    assert [c.arm for c in result.comparisons] == arms.split(",")[1:]
    for arm in result.arms:
        assert arm.summary is not None and arm.diagnostics.spectral_consistency is not None
        if arm.name != "baseline":
            assert all(v != 0 for v in arm.diagnostics.reg_share)


def test_reproduce_refuses_an_unknown_arm_before_tuning(tmp_path):
    res = invoke("reproduce", "--arms", "baseline,gradnrom", "--trials", 1, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "Did you mean 'gradnorm'" in res.output and not (tmp_path / "out").exists()


def test_reference_option_changes_the_comparison(tmp_path):
    spec = write(tmp_path, SEED_SPEC)
    ok("evaluate", "--spec", spec, "--seeds", 2, "--epochs", 1, "--reference", "ssc", "--out", tmp_path)
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    assert result.reference == "ssc" and [(c.arm, c.reference) for c in result.comparisons] == [("baseline", "ssc")]


def test_any_optuna_storage_and_study_name(tmp_path):
    storage = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    ok("tune", "baseline", "--trials", 2, "--epochs", 1, "--storage", storage, "--study-name", "mine",
       "--out", tmp_path / "out")
    study = optuna.load_study(study_name="mine", storage=storage)
    assert len(study.trials) == 2 and not (tmp_path / "out" / "optuna.db").exists()
    assert results.load(tmp_path / "out" / "tune-baseline.json", TuneResult).studies[0].storage == storage


def test_tuned_hyperparameters_from_another_model_or_workload_are_refused(tmp_path):
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--out", tmp_path)
    other = write(tmp_path, "[model]\nhidden = [64]\n")  # the pre-workload spelling of the MLP's widths
    res = invoke("evaluate", "--arms", "baseline", "--spec", other, "--seeds", 1, "--epochs", 1, "--out", tmp_path)
    assert res.exit_code == 2 and "tuned on workload 'mnist1d-mlp' {'hidden': [256, 256]}" in res.output
    assert "'hidden': [64]" in res.output and "sscbench tune baseline" in res.output
    res = invoke("evaluate", "--arms", "baseline", "--workload", "mnist1d-cnn", "--seeds", 1, "--epochs", 1,
                 "--out", tmp_path)
    assert res.exit_code == 2 and "this run is on 'mnist1d-cnn'" in res.output
    assert "--workload mnist1d-cnn" in res.output
    assert not (tmp_path / "evaluate.json").exists()


def test_report_can_compare_against_another_arm_without_training(tmp_path, monkeypatch):
    spec = write(tmp_path, SEED_SPEC)
    ok("evaluate", "--spec", spec, "--seeds", 3, "--epochs", 1, "--out", tmp_path)
    before = (tmp_path / "evaluate.json").read_text()
    from sscbench.engine import trainer

    monkeypatch.setattr(trainer, "_train_one_stack", lambda *a, **k: pytest.fail("report trained"))
    res = ok("report", "--reference", "ssc", "--out", tmp_path)
    assert "Paired comparison with 'ssc'" in res.output
    assert (tmp_path / "evaluate.json").read_text() == before
    stored = results.load(tmp_path / "evaluate.json", EvaluateResult)
    from sscbench.stages.workflow import with_reference

    flipped = with_reference(stored, "ssc").comparisons[0]
    original = stored.comparisons[0]
    assert (flipped.arm, flipped.reference) == ("baseline", "ssc")
    assert flipped.mean_diff == pytest.approx(-original.mean_diff)
    assert flipped.p_ttest == pytest.approx(original.p_ttest)
    bad = invoke("report", "--reference", "nope", "--out", tmp_path)
    assert bad.exit_code == 2 and "reference arm 'nope'" in bad.output


def test_workers_change_speed_not_what_the_results_mean(tmp_path):
    """Sub-stacks trained at once (--workers 2) tune and evaluate as one stack does, to float tolerance."""
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        ok("reproduce", "--trials", 4, "--tune-epochs", 1, "--seeds", 3, "--epochs", 2, "--workers", workers,
           "--out", out)
        trials = results.load(out / "tune-ssc.json", TuneResult).studies[0].trials
        evaluated = results.load(out / "evaluate.json", EvaluateResult)
        assert evaluated.spec.train.workers == workers
        outputs[workers] = ([t.params for t in trials], [t.value for t in trials],
                            [a.test_accuracy for a in evaluated.arms])
    (params1, values1, acc1), (params2, values2, acc2) = outputs[1], outputs[2]
    assert params1 == params2  # the same proposals: one round of 4 is asked before any result
    np.testing.assert_allclose(values1, values2, atol=1e-3)  # 1e-3 = one validation sample
    np.testing.assert_allclose(acc1, acc2, atol=1e-3)


def test_an_unusable_results_folder_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = invoke("evaluate", "--spec", write(tmp_path, SEED_SPEC), "--seeds", 1, "--epochs", 1,
                 "--out", blocker / "out")
    assert res.exit_code == 1 and "Not a directory" in res.output and str(blocker / "out") in res.output
    assert "Traceback" not in res.output


def test_a_full_disk_leaves_earlier_results_intact(tmp_path, monkeypatch):
    import errno
    import os

    spec = write(tmp_path, SEED_SPEC)
    ok("evaluate", "--spec", spec, "--seeds", 1, "--epochs", 1, "--out", tmp_path)
    before = (tmp_path / "evaluate.json").read_bytes()

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    res = invoke("evaluate", "--spec", spec, "--seeds", 1, "--epochs", 2, "--out", tmp_path)
    assert res.exit_code == 1 and "No space left on device" in res.output and "Traceback" not in res.output
    assert (tmp_path / "evaluate.json").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written temporary file left behind


def test_a_study_whose_every_trial_diverges_says_so(tmp_path):
    spec = write(tmp_path, "[tune.lr]\nlow = 1e8\nhigh = 1e9\n")
    res = invoke("tune", "baseline", "--spec", spec, "--trials", 2, "--epochs", 1, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "failed (diverged); giving up" in res.output and "Traceback" not in res.output


def test_a_key_with_a_line_break_is_named_on_one_line(tmp_path):
    res = invoke("evaluate", "--spec", write(tmp_path, '[data]\n"\\r" = 0\n'), "--out", tmp_path / "out")
    assert res.exit_code == 2 and "data.'\\r': Extra inputs are not permitted" in res.output
