"""Faults: real signals during evaluate and compare, a locked storage, an unwritable cache, numerical faults.

Each test is a row of docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from conftest import small_data
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError
from typer.testing import CliRunner

from sscbench.cli import app
from sscbench.contracts import registry
from sscbench.data import Split
from sscbench.engine.trainer import Member, train_stack
from sscbench.output import results
from sscbench.output.results import CompareResult, EvaluateResult
from sscbench.spec import TrainSpec

CLI = [sys.executable, "-m", "sscbench.cli"]
THREE_UNITS = """
[[evaluate.arms]]
name = "baseline"
regularizer = "baseline"
params = { lr = 5e-3, weight_decay = 1e-3 }

[[evaluate.arms]]
name = "gradnorm"
regularizer = "gradnorm"
params = { lr = 4e-3, weight_decay = 1e-3 }

[[evaluate.arms]]
name = "ssc"
regularizer = "ssc"
params = { lr = 4e-3, weight_decay = 1e-3, lambda_ssc = 1e-2 }
"""


# One thread per process: a run and the uninterrupted reference it is compared with train side by side.
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def run(*args, cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600, env=ENV,
                          **kw)


def start(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=ENV)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {proc.stdout.read()}")
        try:
            if condition():
                return
        except (KeyError, ValueError, sqlite3.Error, SQLAlchemyError, optuna.exceptions.StorageInternalError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def finished(proc: subprocess.Popen) -> None:
    """Wait for a run started alongside (the uninterrupted reference), which must succeed."""
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out


def stop(proc: subprocess.Popen, sig: int) -> str:
    sent = time.time()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert time.time() - sent < 10, "did not stop within a few seconds"
    assert proc.returncode == 143 and "interrupted" in out and "Traceback" not in out, out
    return out


def test_sigterm_during_evaluate_keeps_finished_units_and_the_rerun_matches(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(THREE_UNITS)
    args = ("evaluate", "--spec", spec, "--seeds", 2, "--epochs", 4)
    whole_run = start(*args, "--out", tmp_path / "whole", cwd=tmp_path)  # the uninterrupted run, alongside
    url = f"sqlite:///{tmp_path / 'cut' / 'optuna.db'}"

    def one_unit_done() -> bool:
        if not (tmp_path / "cut" / "optuna.db").exists():
            return False
        (summary,) = optuna.get_all_study_summaries(url)
        trials = optuna.load_study(study_name=summary.study_name, storage=url).get_trials()
        return any(t.state == TrialState.COMPLETE for t in trials)

    proc = start(*args, "--out", tmp_path / "cut", cwd=tmp_path)
    wait_for(one_unit_done, proc, "the first unit")
    stop(proc, signal.SIGTERM)
    finished(whole_run)
    assert not (tmp_path / "cut" / "evaluate.json").exists()
    (summary,) = optuna.get_all_study_summaries(url)
    before = optuna.load_study(study_name=summary.study_name, storage=url).get_trials()
    kept = [t.number for t in before if t.state == TrialState.COMPLETE]
    assert run(*args, "--out", tmp_path / "cut", cwd=tmp_path).returncode == 0
    after = optuna.load_study(study_name=summary.study_name, storage=url).get_trials()
    assert all(after[n].state == TrialState.COMPLETE for n in kept)  # finished units were not trained again
    assert sum(t.state == TrialState.COMPLETE for t in after) == 3
    whole = results.load(tmp_path / "whole" / "evaluate.json", EvaluateResult)
    resumed = results.load(tmp_path / "cut" / "evaluate.json", EvaluateResult)
    assert [a.test_accuracy for a in resumed.arms] == [a.test_accuracy for a in whole.arms]


def test_sigint_during_compare_keeps_finished_replicates_and_the_rerun_matches(tmp_path):
    args = ("compare", *small_data(tmp_path), "--replicates", 2, "--seeds", 2, "--trials", 6, "--tune-epochs", 2,
            "--epochs", 3)
    whole_run = start(*args, "--out", tmp_path / "whole", cwd=tmp_path)  # the uninterrupted run, alongside
    proc = start(*args, "--out", tmp_path / "cut", cwd=tmp_path)
    wait_for(lambda: list((tmp_path / "cut").glob("compare-replicates/*/replicate-0.json")), proc, "replicate 0")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    finished(whole_run)
    assert proc.returncode == 130 and "interrupted" in out and "Traceback" not in out, out
    assert not (tmp_path / "cut" / "compare.json").exists()
    assert run(*args, "--out", tmp_path / "cut", cwd=tmp_path).returncode == 0
    whole = results.load(tmp_path / "whole" / "compare.json", CompareResult)
    resumed = results.load(tmp_path / "cut" / "compare.json", CompareResult)
    assert resumed.reused_replicates == [0]
    assert resumed.comparisons == whole.comparisons
    assert [[a.test_accuracy for a in r.arms] for r in resumed.replicates] == \
        [[a.test_accuracy for a in r.arms] for r in whole.replicates]


def test_a_locked_sqlite_storage_is_one_line(tmp_path):
    out = tmp_path / "out"
    assert run("tune", "baseline", "--trials", 1, "--epochs", 1, "--out", out, cwd=tmp_path).returncode == 0
    lock = sqlite3.connect(out / "optuna.db")
    lock.execute("BEGIN EXCLUSIVE")  # another program holds the database
    try:
        res = run("tune", "baseline", "--trials", 2, "--epochs", 1, "--study-name", "other", "--out", out,
                  cwd=tmp_path)
    finally:
        lock.rollback()
        lock.close()
    assert res.returncode in (1, 2) and "database is locked" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_an_unwritable_data_cache_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SSCBENCH_CACHE", str(blocker / "cache"))
    spec = tmp_path / "spec.toml"
    spec.write_text("[data]\nnum_samples = 300\nvalidation_size = 40\n" + THREE_UNITS)
    res = CliRunner().invoke(app, ["evaluate", "--spec", str(spec), "--seeds", "1", "--epochs", "1",
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "cannot write the data cache" in res.output and "SSCBENCH_CACHE" in res.output
    assert "Traceback" not in res.output


def test_an_arm_whose_every_seed_diverges_is_reported_and_the_rest_stands(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(THREE_UNITS.replace("lr = 4e-3, weight_decay = 1e-3 }\n\n[[evaluate.arms]]\nname = \"ssc\"",
                                        "lr = 1e10, weight_decay = 1.0 }\n\n[[evaluate.arms]]\nname = \"ssc\""))
    res = CliRunner().invoke(app, ["evaluate", "--spec", str(spec), "--seeds", "2", "--epochs", "1",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    arms = {a.name: a for a in result.arms}
    assert arms["gradnorm"].diverged == [0, 1] and arms["gradnorm"].test_accuracy == [None, None]
    assert arms["gradnorm"].mean is None and "diverged" in res.output
    assert arms["ssc"].diverged == [] and all(v is not None for v in arms["ssc"].test_accuracy)
    assert [c.arm for c in result.comparisons] == ["ssc"]  # nothing to compare for the diverged arm
    assert CliRunner().invoke(app, ["report", "--out", str(tmp_path)]).exit_code == 0
    assert json.loads((tmp_path / "evaluate.json").read_text())["arms"][1]["std"] is None


def test_learning_rates_at_the_edges_of_the_range_train(dataset):
    small = Split(dataset.train.x[:512], dataset.train.y[:512])
    members = [Member(0, 1e-4, 1e-6, {"lambda_ssc": 1e-4}), Member(1, 1e-2, 1e-1, {"lambda_ssc": 1.0})]
    history = train_stack(small, [40, 256, 256, 10], members, registry.load("ssc"), 2, TrainSpec(), {"val": small})
    assert history.diverged_at == [None, None] and np.isfinite(history.train_loss).all()


def test_a_non_finite_hyperparameter_reaching_a_plugin_is_isolated_to_its_member(dataset):
    small = Split(dataset.train.x[:512], dataset.train.y[:512])
    ssc = registry.load("ssc")
    members = [Member(0, 1e-3, 1e-3, {"lambda_ssc": 0.1}), Member(1, 1e-3, 1e-3, {"lambda_ssc": float("nan")}),
               Member(2, 1e-3, 1e-3, {"lambda_ssc": float("inf")})]
    history = train_stack(small, [40, 256, 256, 10], members, ssc, 2, TrainSpec(), {"val": small})
    alone = train_stack(small, [40, 256, 256, 10], members[:1], ssc, 2, TrainSpec(), {"val": small})
    assert history.diverged_at == [None, 0, 0]
    np.testing.assert_allclose(history.train_loss[0], alone.train_loss[0], rtol=1e-5)
    for a, b in zip(history.model.member(0), alone.model.member(0), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_catalogue_names_only_tests_that_exist():
    root = Path(__file__).resolve().parent
    catalogue = (root.parent / "docs" / "reliability.md").read_text()
    import re

    for file, name in re.findall(r"`(test_\w+\.py)::(test_\w+)`", catalogue):
        assert f"def {name}(" in (root / file).read_text(), (file, name)
    assert os.path.exists(root / "test_fuzz.py")


def test_a_corrupt_sqlite_storage_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "optuna.db").write_bytes(b"this is not a database" * 100)
    res = run("tune", "baseline", "--trials", 1, "--epochs", 1, "--out", out, cwd=tmp_path)
    assert res.returncode == 2 and "file is not a database" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (out / "tune-baseline.json").exists()
