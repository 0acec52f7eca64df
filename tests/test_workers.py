"""Many workers on one storage, with real processes and real signals.

The PostgreSQL tests need the throwaway server `make test` starts (tools/with-postgres.sh puts its
URL in SSCBENCH_TEST_POSTGRES); without it they skip and say why. The storage refusals and the
SQLite single-process rule need no server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import SMALL_DATA
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from sscbench.output import results
from sscbench.output.results import CompareResult, EvaluateResult, TuneResult
from sscbench.spec import RunSpec
from sscbench.stages.storage import open_storage

PG = os.environ.get("SSCBENCH_TEST_POSTGRES")
needs_pg = pytest.mark.skipif(PG is None, reason="no PostgreSQL server: run the suite through `make test`, "
                                                  "which starts one (tools/with-postgres.sh)")
FAST_HEARTBEAT = "[storage]\nheartbeat_interval = 1\ngrace_period = 3\n"
CLI = [sys.executable, "-m", "sscbench.cli"]


def spawn(*args, cwd: Path, spec: str | None = None) -> subprocess.Popen:
    argv = [*CLI, *map(str, args)]
    if spec is not None:
        path = cwd / f"spec-{uuid.uuid4().hex[:6]}.toml"
        path.write_text(spec)
        argv += ["--spec", str(path)]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def trials_of(url: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=url).get_trials()


@needs_pg
def test_three_workers_finish_one_study_with_exactly_the_requested_count(tmp_path, pg_url):
    procs = [spawn("tune", "baseline", "--trials", 7, "--epochs", 1, "--round-size", 2, "--storage", pg_url,
                   "--study-name", "shared", "--out", tmp_path / f"w{k}", cwd=tmp_path, spec=SMALL_DATA)
             for k in range(3)]
    for p in procs:
        finish(p)
    trials = trials_of(pg_url, "shared")
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 7
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)  # no duplicates
    for k in range(3):  # every worker writes the complete results file
        record = results.load(tmp_path / f"w{k}" / "tune-baseline.json", TuneResult).studies[0]
        assert sum(t.state == "COMPLETE" for t in record.trials) == 7


@needs_pg
def test_a_killed_workers_trials_are_retried_with_the_same_parameters(tmp_path, pg_url):
    args = ("tune", "ssc", "--trials", 6, "--epochs", 4, "--round-size", 3, "--storage", pg_url,
            "--study-name", "kill")
    victim = spawn(*args, "--out", tmp_path / "victim", cwd=tmp_path, spec=FAST_HEARTBEAT)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the victim is training a round (its trials have parameters)
        try:
            if any(t.state == TrialState.RUNNING and len(t.params) == 3 for t in trials_of(pg_url, "kill")):
                break
        except KeyError:
            pass
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = {t.number: t.params for t in trials_of(pg_url, "kill") if t.state == TrialState.RUNNING}
    assert killed, "the victim was killed outside a round"
    survivor = spawn(*args, "--out", tmp_path / "survivor", cwd=tmp_path, spec=FAST_HEARTBEAT)
    finish(survivor)
    trials = trials_of(pg_url, "kill")
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 6
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    retried = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t): t for t in trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None}
    assert set(retried) == set(killed)
    drawn = 3  # lr, weight_decay, lambda_ssc
    assert any(len(params) == drawn for params in killed.values())
    for number, params in killed.items():
        assert trials[number].state == TrialState.FAIL and retried[number].state == TrialState.COMPLETE
        # the retry keeps every parameter drawn: all of them for a trial that trained, and those a trial killed
        # mid-draw (it never trained) had drawn
        assert retried[number].params.items() >= params.items()
    record = results.load(tmp_path / "survivor" / "tune-ssc.json", TuneResult).studies[0]
    assert sum(t.state == "COMPLETE" for t in record.trials) == 6


SPEC_ARMS = SMALL_DATA + """
[[evaluate.arms]]
name = "baseline"
regularizer = "baseline"
params = { lr = 5e-3, weight_decay = 1e-3 }

[[evaluate.arms]]
name = "ssc"
regularizer = "ssc"
params = { lr = 4e-3, weight_decay = 1e-3, lambda_ssc = 1e-2 }

[[evaluate.arms]]
name = "gradnorm"
regularizer = "gradnorm"
params = { lr = 4e-3, weight_decay = 1e-3 }
"""


@needs_pg
def test_an_evaluation_shared_by_two_workers_equals_one_process(tmp_path, pg_url):
    args = ("evaluate", "--seeds", 2, "--epochs", 2)
    alone = spawn(*args, "--out", tmp_path / "alone", cwd=tmp_path, spec=SPEC_ARMS)  # its own SQLite, alongside
    pair = [spawn(*args, "--storage", pg_url, "--out", tmp_path / f"w{k}", cwd=tmp_path, spec=SPEC_ARMS)
            for k in range(2)]
    for p in [alone, *pair]:
        finish(p)
    expected = results.load(tmp_path / "alone" / "evaluate.json", EvaluateResult)
    for k in range(2):
        shared = results.load(tmp_path / f"w{k}" / "evaluate.json", EvaluateResult)
        assert [a.test_accuracy for a in shared.arms] == [a.test_accuracy for a in expected.arms]
        assert shared.comparisons == expected.comparisons
    (study,) = [s for s in optuna.get_all_study_summaries(pg_url) if s.study_name.startswith("evaluate-")]
    units = trials_of(pg_url, study.study_name)
    assert sorted(t.user_attrs["sscbench_unit"] for t in units if t.state == TrialState.COMPLETE) == [0, 1, 2]


@needs_pg
def test_two_workers_of_a_tiny_compare_give_one_processs_statistics(tmp_path, pg_url):
    args = ("compare", "--replicates", 2, "--seeds", 2, "--trials", 2, "--tune-epochs", 1, "--epochs", 1)
    alone = spawn(*args, "--out", tmp_path / "alone", cwd=tmp_path, spec=SMALL_DATA)  # its own SQLite, alongside
    pair = [spawn(*args, "--storage", pg_url, "--out", tmp_path / f"w{k}", cwd=tmp_path, spec=SMALL_DATA)
            for k in range(2)]
    for p in [alone, *pair]:
        finish(p)
    expected = results.load(tmp_path / "alone" / "compare.json", CompareResult)
    for k in range(2):
        shared = results.load(tmp_path / f"w{k}" / "compare.json", CompareResult)
        assert shared.comparisons == expected.comparisons
        assert [[a.test_accuracy for a in r.arms] for r in shared.replicates] == \
            [[a.test_accuracy for a in r.arms] for r in expected.replicates]


@needs_pg
def test_two_processes_of_a_sequential_compare_reach_one_processs_decisions(tmp_path, pg_url):
    from test_compare_sequential import spec_of

    spec = tmp_path / "spec.toml"
    spec.write_text(SMALL_DATA + spec_of("baseline", "twin", "ssc"))
    args = ("compare", "--spec", spec, "--replicates", "auto", "--min-replicates", 3, "--max-replicates", 5,
            "--batch", 2, "--seeds", 2, "--epochs", 1)
    alone = spawn(*args, "--out", tmp_path / "alone", cwd=tmp_path)  # its own SQLite, alongside
    pair = [spawn(*args, "--storage", pg_url, "--out", tmp_path / f"w{k}", cwd=tmp_path) for k in range(2)]
    for p in [alone, *pair]:
        finish(p)
    expected = results.load(tmp_path / "alone" / "compare.json", CompareResult)
    assert {c.arm: c.sequential.decision for c in expected.comparisons}["twin"] == "equivalent"
    assert [c.arm for c in expected.comparisons] == ["twin", "ssc"]
    assert [look.n for look in expected.comparisons[0].sequential.looks] == [3]  # then batches of 2: 5
    for k in range(2):
        shared = results.load(tmp_path / f"w{k}" / "compare.json", CompareResult)
        assert [c.sequential for c in shared.comparisons] == [c.sequential for c in expected.comparisons]
        assert [[a.test_accuracy for a in r.arms] for r in shared.replicates] == \
            [[a.test_accuracy for a in r.arms] for r in expected.replicates]


@needs_pg
def test_worker_serves_a_study_another_process_started(tmp_path, pg_url):
    tune = spawn("tune", "baseline", "--trials", 8, "--epochs", 2, "--round-size", 2, "--storage", pg_url,
                 "--study-name", "served", "--out", tmp_path / "tune", cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if trials_of(pg_url, "served"):
                break
        except KeyError:
            pass
        time.sleep(0.1)
    out = finish(spawn("worker", "--storage", pg_url, cwd=tmp_path))
    finish(tune)
    trials = trials_of(pg_url, "served")
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 8
    assert "served" in out and "nothing left to do" in out
    workers = {t.user_attrs.get("sscbench_round") for t in trials}
    assert len(workers) == 4  # 8 trials in rounds of 2, asked under one lock whichever process asked


def test_a_second_process_on_a_sqlite_study_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    url = f"sqlite:///{out / 'optuna.db'}"
    storage = open_storage(url)
    with storage.lease("held"):  # this process works on study "held"
        res = subprocess.run([*CLI, "tune", "baseline", "--trials", "1", "--epochs", "1", "--study-name", "held",
                              "--out", str(out)], capture_output=True, text=True)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "in use by another sscbench process" in res.stderr and "Traceback" not in res.stderr
        other = subprocess.run([*CLI, "tune", "baseline", "--trials", "1", "--epochs", "1", "--study-name", "free",
                                "--out", str(out)], capture_output=True, text=True)
        assert other.returncode == 0, other.stderr  # other studies of the same file are free


@pytest.mark.parametrize(("url", "needle"), [
    ("postgresql+psycopg://user:hunter2@127.0.0.1:1/nowhere", "cannot be used"),
    ("postgresql://user:hunter2@127.0.0.1:1/nowhere", "postgresql+psycopg://user:***@127.0.0.1:1/nowhere"),
    ("mysql://user:hunter2@localhost/db", "unknown scheme or driver 'mysql'"),
    ("not-a-url", "unknown scheme"),
    ("sqlite:////no/such/folder/optuna.db", "does not exist"),
    ("sqlite://{}", "cannot be used"),  # found by make fuzz: Optuna formats URLs as templates
    ("postgresql+psycopg2://user:hunter2@127.0.0.1:1/db", "unknown scheme or driver 'postgresql+psycopg2'"),
])
def test_bad_storage_urls_are_refused_in_one_line_with_the_password_masked(tmp_path, url, needle):
    from typer.testing import CliRunner

    from sscbench.cli import app

    res = CliRunner().invoke(app, ["tune", "baseline", "--trials", "1", "--epochs", "1", "--storage", url,
                                   "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and needle in res.stderr, res.output
    assert "hunter2" not in res.output and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1 and not res.stdout.strip()
    assert not (tmp_path / "out").exists()


def test_worker_refuses_a_bad_url(tmp_path):
    res = subprocess.run([*CLI, "worker", "--storage", "nope://x"], capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 2 and "unknown scheme" in res.stderr


def test_job_records_let_a_worker_run_a_study(tmp_path):
    """A study records what a worker needs to run it (kind, spec, plugin, sampler seed)."""
    out = tmp_path / "out"
    res = subprocess.run([*CLI, "tune", "baseline", "--trials", "1", "--epochs", "1", "--study-name", "j",
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    study = optuna.load_study(study_name="j", storage=f"sqlite:///{out / 'optuna.db'}")
    job = study.user_attrs["sscbench_job"]
    assert job["kind"] == "tune" and job["plugin"] == "baseline" and job["spec"]["tune"]["trials"] == 1
    assert RunSpec.model_validate(job["spec"]).tune.trials == 1  # the spec a worker rebuilds the study from


def test_an_evaluation_unit_is_named_by_what_decides_its_results_not_where_its_parameters_came_from():
    """A tuning trial retried after a kill has a new number and the same parameters: its arms' evaluation units
    must be the ones an uninterrupted run queues, so the name ignores the arm's source and nothing else."""
    from sscbench.contracts import task
    from sscbench.stages.arms import ResolvedArm
    from sscbench.stages.workqueue import evaluation_study_name

    run = task.resolve_run(RunSpec(), ["ssc"])
    params = {"lr": 3e-3, "weight_decay": 1e-3, "lambda_ssc": 0.1}

    def name(source: str = "tuned: results/tune-ssc.json (study s, trial 7, value 0.7400)", seeds=(0, 1),
             **changed) -> str:
        arm = ResolvedArm("ssc", "ssc", params, source, ())
        return evaluation_study_name(run, [replace(arm, **changed)], list(seeds))

    assert name() == name("tuned: elsewhere/tune-ssc.json (study s, trial 12, value 0.7400)") == name("spec")
    assert name().startswith("evaluate-")
    assert name(params=params | {"lambda_ssc": 0.2}) != name()
    assert name(regularizer="spatial") != name() and name(name="ssc-b") != name()
    assert name(seeds=(0, 2)) != name()


def _wait_for_running(url: str, study: str, proc: subprocess.Popen, params: int = 3) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if any(t.state == TrialState.RUNNING and len(t.params) == params for t in trials_of(url, study)):
                return
        except KeyError:
            pass
        time.sleep(0.05)
    raise AssertionError("the process never got to train a round")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_tune_cleanly_and_the_rerun_ends_as_an_uninterrupted_run(tmp_path, sig):
    args = ("tune", "ssc", "--trials", 6, "--epochs", 3, "--round-size", 3, "--study-name", "sig")
    whole = spawn(*args, "--out", tmp_path / "whole", cwd=tmp_path)  # the uninterrupted run, alongside
    url = f"sqlite:///{tmp_path / 'cut' / 'optuna.db'}"
    (tmp_path / "cut").mkdir()
    proc = spawn(*args, "--out", tmp_path / "cut", cwd=tmp_path)
    _wait_for_running(url, "sig", proc)
    sent = time.time()
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    stopped_after = time.time() - sent  # before waiting for the uninterrupted run, which may still be training
    finish(whole)
    assert stopped_after < 10
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), out
    assert "interrupted" in out and "Traceback" not in out
    assert not (tmp_path / "cut" / "tune-ssc.json").exists()
    finish(spawn(*args, "--out", tmp_path / "cut", cwd=tmp_path))
    whole = results.load(tmp_path / "whole" / "tune-ssc.json", TuneResult).studies[0].trials
    resumed = results.load(tmp_path / "cut" / "tune-ssc.json", TuneResult).studies[0].trials
    assert [(t.number, t.state, t.params, t.value) for t in resumed] == \
        [(t.number, t.state, t.params, t.value) for t in whole]


@needs_pg
def test_sigterm_on_a_shared_storage_queues_the_workers_trials_at_once(tmp_path, pg_url):
    args = ("tune", "ssc", "--trials", 6, "--epochs", 3, "--round-size", 3, "--storage", pg_url, "--study-name", "t")
    proc = spawn(*args, "--out", tmp_path / "a", cwd=tmp_path)
    _wait_for_running(pg_url, "t", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    trials = trials_of(pg_url, "t")
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert failed and sorted(RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in queued) == \
        sorted(t.number for t in failed)
    finish(spawn(*args, "--out", tmp_path / "b", cwd=tmp_path))  # no grace period to wait for
    assert [t.state for t in trials_of(pg_url, "t")].count(TrialState.COMPLETE) == 6
