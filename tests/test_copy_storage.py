"""`sscbench copy-storage`: a run begun on SQLite moves to PostgreSQL and finishes there, and every refusal.

The move is tested end to end with real processes: a comparison interrupted on SQLite, copied, and
finished by two workers on PostgreSQL, against the same comparison run uninterrupted by one process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import SMALL_DATA, invoke
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from sscbench.output import results
from sscbench.output.results import CompareResult
from sscbench.stages import transfer
from sscbench.stages.storage import StorageError

CLI = [sys.executable, "-m", "sscbench.cli"]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}
optuna.logging.set_verbosity(optuna.logging.WARNING)
needs_pg = pytest.mark.skipif("SSCBENCH_TEST_POSTGRES" not in os.environ,
                              reason="no PostgreSQL server: run the suite through `make test`")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def trials_in(url: str) -> dict[str, list[optuna.trial.FrozenTrial]]:
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=url).get_trials()
            for s in optuna.get_all_study_summaries(url, include_best_trial=False)}


def a_storage(path: Path, names: tuple[str, ...] = ("a", "b")) -> str:
    """A SQLite storage holding small studies: finished trials, a failed one, and one left RUNNING."""
    url = sqlite_url(path)
    for name in names:
        study = optuna.create_study(study_name=name, storage=url, direction="maximize")
        study.set_user_attr("sscbench_job", {"kind": "tune", "name": name})
        for k in range(3):
            trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
            trial.set_user_attr("round", k)
            study.tell(trial, 0.5 + k / 10 if k != 1 else None, state=None if k != 1 else TrialState.FAIL)
        study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})  # left RUNNING
    return url


def test_a_copy_keeps_every_trial_in_order_with_its_attributes(tmp_path):
    source = a_storage(tmp_path / "from.db")
    copied = transfer.copy_storage(source, sqlite_url(tmp_path / "to.db"))
    assert copied == [("a", 4), ("b", 4)]
    before, after = trials_in(source), trials_in(sqlite_url(tmp_path / "to.db"))
    assert before.keys() == after.keys()
    for name in before:
        assert [(t.number, t.state, t.params, t.values, t.user_attrs) for t in after[name]] == \
            [(t.number, t.state, t.params, t.values, t.user_attrs) for t in before[name]]
        assert [t.state for t in after[name]][-1] == TrialState.RUNNING
        assert optuna.load_study(study_name=name, storage=sqlite_url(tmp_path / "to.db")).user_attrs == \
            {"sscbench_job": {"kind": "tune", "name": name}}


def test_a_name_the_destination_holds_refuses_the_copy_and_writes_nothing(tmp_path):
    source = a_storage(tmp_path / "from.db")
    destination = a_storage(tmp_path / "to.db", names=("b",))
    before = trials_in(destination)
    refused = invoke("copy-storage", source, destination)
    err = refused.output
    assert refused.exit_code == 2, err
    assert "already holds study 'b'" in err and "nothing copied" in err and len(err.strip().splitlines()) == 1
    assert trials_in(destination).keys() == before.keys() == {"b"}


@pytest.mark.parametrize("fresh", [True, False], ids=["new file", "file holding another study"])
@pytest.mark.parametrize("interruption", [KeyboardInterrupt, OSError("disk full")], ids=["ctrl-c", "error"])
def test_a_copy_cut_part_way_leaves_the_destination_as_it_was(tmp_path, monkeypatch, interruption, fresh):
    source = a_storage(tmp_path / "from.db")
    destination = sqlite_url(tmp_path / "to.db") if fresh else a_storage(tmp_path / "to.db", names=("c",))
    before = None if fresh else trials_in(destination)
    real = optuna.copy_study
    calls = []

    def cut_at_the_second(**kw):
        calls.append(kw["from_study_name"])
        real(**kw)
        if len(calls) == 2:  # the second study is written, then the copy is cut
            raise interruption

    monkeypatch.setattr(optuna, "copy_study", cut_at_the_second)
    cut = invoke("copy-storage", source, destination)
    code, err = cut.exit_code, cut.output
    assert code == (130 if interruption is KeyboardInterrupt else 1) and calls == ["a", "b"]
    assert "the destination holds none of the studies" in err and "Traceback" not in err
    if fresh:
        assert not (tmp_path / "to.db").exists()  # the file the copy created is gone
    else:
        assert trials_in(destination) == before  # its own study kept, the copied ones deleted
    assert set(trials_in(source)) == {"a", "b"}  # the source is untouched


def test_a_sqlite_study_another_process_works_on_is_refused(tmp_path):
    source = a_storage(tmp_path / "from.db")
    holder = subprocess.Popen(  # holds study 'b' the way a running sscbench process does (storage.lease)
        [sys.executable, "-c", "import sys\nfrom sscbench.stages.storage import open_storage\n"
         f"with open_storage({source!r}).lease('b'):\n    print('held', flush=True)\n    sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = invoke("copy-storage", source, sqlite_url(tmp_path / "to.db"))
    finally:
        holder.communicate("", timeout=60)
    err = refused.output
    assert refused.exit_code == 2, err
    assert "study 'b'" in err and "in use by another sscbench process" in err
    assert not (tmp_path / "to.db").exists()


def test_bad_pairs_are_refused_in_one_line(tmp_path):
    source = a_storage(tmp_path / "from.db")
    empty = sqlite_url(tmp_path / "empty.db")
    optuna.storages.RDBStorage(empty)  # a storage with the schema and no study
    cases = [
        ([source, source], "both the source and the destination"),
        ([empty, source], "holds no study: nothing to copy"),
        ([sqlite_url(tmp_path / "missing.db"), sqlite_url(tmp_path / "to.db")], "no such SQLite file"),
        ([source, "postgresql+psycopg://user:s3cret@127.0.0.1:1/x"], "cannot be used"),
        ([source, "mysql://h/db"], "unknown scheme"),
        ([source], "Missing argument 'TO_URL'"),
    ]
    for argv, needle in cases:
        refused = invoke("copy-storage", *argv)
        err = refused.output
        assert refused.exit_code == 2, err
        assert needle in err, (argv, err)
        assert "s3cret" not in err and "Traceback" not in err
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "to.db").exists()  # nothing made
    with pytest.raises(StorageError):
        transfer.copy_storage(source, "postgresql+psycopg://user@127.0.0.1:1/x")


@needs_pg
def test_a_postgresql_study_with_a_live_worker_is_refused(tmp_path, pg_url):
    study = optuna.create_study(study_name="live", storage=pg_url, direction="maximize")
    trial = study.ask()
    optuna.storages.RDBStorage(pg_url).record_heartbeat(trial._trial_id)  # a worker training it now
    with pytest.raises(transfer.CopyError, match="1 trial\\(s\\) a live worker is training"):
        transfer.copy_storage(pg_url, sqlite_url(tmp_path / "to.db"))
    assert not (tmp_path / "to.db").exists()
    import psycopg  # the worker died two minutes ago: its trial is stale, and the copy goes ahead

    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("UPDATE trial_heartbeats SET heartbeat = heartbeat - interval '2 minutes'")
    assert transfer.copy_storage(pg_url, sqlite_url(tmp_path / "to.db")) == [("live", 1)]


@needs_pg
def test_a_comparison_moved_from_sqlite_to_postgresql_finishes_on_two_workers_as_one_process(tmp_path, pg_url):
    spec = tmp_path / "spec.toml"
    spec.write_text(SMALL_DATA + "[tune]\nround_size = 2\n")
    args = [*map(str, ("compare", "--spec", spec, "--replicates", 2, "--seeds", 2, "--trials", 4,
                       "--tune-epochs", 3, "--epochs", 2))]

    def start(*more) -> subprocess.Popen:
        return subprocess.Popen([*CLI, *args, *map(str, more)], cwd=tmp_path, env=ENV, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    whole = start("--out", tmp_path / "whole")  # one process, uninterrupted, alongside
    cut = start("--out", tmp_path / "cut")
    db = tmp_path / "cut" / "optuna.db"

    def running_after_replicate_0() -> bool:
        if not list((tmp_path / "cut").glob("compare-replicates/*/replicate-0.json")):
            return False
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0] > 0

    import test_reliability

    test_reliability.wait_for(running_after_replicate_0, cut, "a trial of replicate 1 running")
    cut.send_signal(signal.SIGINT)
    out, _ = cut.communicate(timeout=60)
    assert cut.returncode == 130, out
    assert any(t.state == TrialState.RUNNING for ts in trials_in(sqlite_url(db)).values() for t in ts)

    moved = subprocess.run([*CLI, "copy-storage", sqlite_url(db), pg_url], capture_output=True, text=True,
                           env=ENV)
    assert moved.returncode == 0 and moved.stdout.startswith("copied "), moved.stderr
    workers = [start("--storage", pg_url, "--out", tmp_path / "cut"), start("--storage", pg_url, "--out",
                                                                             tmp_path / "joined")]
    for proc in [whole, *workers]:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    retried = [t for ts in trials_in(pg_url).values() for t in ts
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert retried, "the trials left RUNNING were not trained again on PostgreSQL"
    expected = results.load(tmp_path / "whole" / "compare.json", CompareResult)
    for folder in ("cut", "joined"):
        moved_run = results.load(tmp_path / folder / "compare.json", CompareResult)
        assert moved_run.comparisons == expected.comparisons
        assert [[a.test_accuracy for a in r.arms] for r in moved_run.replicates] == \
            [[a.test_accuracy for a in r.arms] for r in expected.replicates]
        assert [[p.params for p in r.tuning] for r in moved_run.replicates] == \
            [[p.params for p in r.tuning] for r in expected.replicates]

    def tuning_paths(url: str) -> dict[str, list[tuple]]:  # every tuning study's path, not only its best trial
        return {name: [(t.params, t.values) for t in ts if t.state == TrialState.COMPLETE]
                for name, ts in trials_in(url).items() if not name.startswith("evaluate-")}

    assert tuning_paths(pg_url) == tuning_paths(sqlite_url(tmp_path / "whole" / "optuna.db"))
    # a retry renumbers a trial, not its parameters: the same evaluation studies as the uninterrupted run's
    assert sorted(trials_in(pg_url)) == sorted(trials_in(sqlite_url(tmp_path / "whole" / "optuna.db")))

    back = sqlite_url(tmp_path / "back.db")  # and back into a SQLite file, as a backup
    assert [name for name, _ in transfer.copy_storage(pg_url, back)] == sorted(trials_in(pg_url))
