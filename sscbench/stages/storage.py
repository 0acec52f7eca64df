"""Optuna storages as sscbench uses them: one process on SQLite, many workers on PostgreSQL.

What it is: opening a storage URL (refusing a bad one in one line, password
masked), and the three things workers sharing a study need:

- ``lease(study)``: SQLite studies take one process at a time. A lock on a
  byte of ``DB.lock`` (one byte per study) is held while a process works on a
  study; a second process is refused with one line. Whoever holds the lease
  knows that any RUNNING trial it finds was left by a dead process.
- ``serial(study)``: on PostgreSQL, "count COMPLETE + RUNNING + WAITING, then
  ask" runs under a transaction-independent advisory lock, so N workers never
  ask more trials than the study needs (Optuna's ``MaxTrialsCallback``
  overshoots by up to one trial per worker).
- ``heartbeat(trial ids)``: one background thread records a heartbeat for
  every asked trial until it is told. A worker that dies stops beating; after
  ``grace_period`` seconds ``fail_stale_trials`` (run before every ask) marks
  its trials failed, and ``RetryHeartbeatStaleTrialCallback`` queues a copy of
  each with the same parameters (``retried_trial_number`` names the original).

What it is not: the tuning or evaluation logic (``sscbench.tuning``,
``sscbench.evaluation``), which use these.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import signal
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from sscbench.redact import UNSAFE, mask, masked_json, unsafe
from sscbench.spec import StorageSpec

# Heartbeats, fail_stale_trials and the retry callback are marked experimental in Optuna; sscbench
# relies on them knowingly (the Optuna version is pinned), so their warnings are not shown.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# Optuna warns that heartbeats are meant for Study.optimize; sscbench's ask/tell workers beat themselves.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

POLL_SECONDS = 0.5  # how often a worker with nothing to ask for looks again

#: Study user attribute: how to run the study (kind, spec, plugin or arms), so a worker can take it up.
JOB_ATTR = "sscbench_job"


def job_record(job: dict) -> dict:
    """A job as it is kept in the storage for workers: any URL password in it masked (a worker brings its own)."""
    return masked_json(job)


class StorageError(RuntimeError):
    """A storage that cannot be used: bad URL, missing driver, unreachable server, study in use."""


def normalise(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3, the driver sscbench installs."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


SCHEMES = ("sqlite", "postgresql+psycopg")


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs or an in-memory database)."""
    if not url.startswith("sqlite:///") or url in ("sqlite://", "sqlite:///:memory:"):
        return None
    return Path(url[len("sqlite:///"):])


@dataclass
class Storage:
    """An opened storage and how workers share it."""

    url: str
    rdb: RDBStorage
    spec: StorageSpec

    @property
    def shared(self) -> bool:
        """True where several processes may work on one study at once (PostgreSQL)."""
        return not self.url.startswith("sqlite")

    @property
    def masked(self) -> str:
        return mask(self.url)

    def create_study(self, name: str, sampler: optuna.samplers.BaseSampler | None = None,
                     pruner: optuna.pruners.BasePruner | None = None, direction: str = "maximize") -> optuna.Study:
        """Create or load a study; workers racing to create the same study all end with it."""
        for attempt in range(5):
            try:
                return optuna.create_study(study_name=name, storage=self.rdb, sampler=sampler, pruner=pruner,
                                           direction=direction, load_if_exists=True)
            except (optuna.exceptions.DuplicatedStudyError, IntegrityError):
                time.sleep(0.05 * (attempt + 1))  # another worker created it between our check and insert
        return optuna.load_study(study_name=name, storage=self.rdb, sampler=sampler, pruner=pruner)

    @contextmanager
    def lease(self, study: str) -> Iterator[None]:
        """Exclusive use of a SQLite study by this process; nothing on a shared storage."""
        path = sqlite_path(self.url)
        if self.shared or path is None:
            yield
            return
        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        offset = int(hashlib.sha256(study.encode()).hexdigest()[:12], 16) % (2**40)
        try:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
            except OSError:
                raise StorageError(
                    f"study '{study}' in {self.masked} is in use by another sscbench process; a SQLite "
                    "storage takes one process per study: wait for it, or use PostgreSQL for several workers"
                ) from None
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextmanager
    def serial(self, study: str) -> Iterator[None]:
        """Run the block while no other worker runs it for the same study (PostgreSQL advisory lock)."""
        if not self.shared:
            yield
            return
        key = int(hashlib.sha256(f"sscbench:{study}".encode()).hexdigest()[:15], 16)  # fits a bigint
        from sqlalchemy import text

        with self.rdb.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    @contextmanager
    def heartbeat(self, trial_ids: Iterable[int]) -> Iterator[None]:
        """Beat for every trial from one background thread until the block ends (shared storages)."""
        ids = list(trial_ids)
        if not self.shared or not ids:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while True:
                for tid in ids:
                    try:
                        self.rdb.record_heartbeat(tid)
                    except SQLAlchemyError:  # a missed beat is retried at the next interval
                        pass
                if stop.wait(self.spec.heartbeat_interval):
                    return

        thread = threading.Thread(target=beat, name="sscbench-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def claim(self, trial_ids: Iterable[int]) -> None:
        """Record a first heartbeat for trials just asked; call it under ``serial``, right after asking."""
        if self.shared:
            for tid in trial_ids:
                self.rdb.record_heartbeat(tid)

    def fail_stale(self, study: optuna.Study) -> None:
        """Fail trials whose worker died; the retry callback queues their copies. Call it under ``serial``.

        Optuna's ``fail_stale_trials`` only sees trials that have beaten at least once. Workers
        record a first beat under the study's lock right after asking (``claim``), so a RUNNING
        trial without any beat, seen under that lock, belongs to a worker that died in between.
        """
        if not self.shared:
            return
        optuna.storages.fail_stale_trials(study)
        running = {t._trial_id: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        if not running:
            return
        from sqlalchemy import bindparam, text

        query = text("SELECT DISTINCT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
            bindparam("ids", expanding=True))
        with self.rdb.engine.connect() as conn:
            beaten = {row[0] for row in conn.execute(query, {"ids": list(running)})}
        for tid, trial in running.items():
            if tid not in beaten:
                requeue(study, trial.number, self.spec.max_retry)


def requeue(study: optuna.Study, number: int, max_retry: int | None) -> None:
    """Fail a running trial and queue a copy with its parameters and attributes, as Optuna does for stale ones.

    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` of the copy names the original.
    """
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, study.get_trials(deepcopy=False)[number])


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Defer SIGINT and SIGTERM until the block ends (main thread only), so bookkeeping is all or nothing.

    Asking a round (trials, their parameters and attributes, the sampler's state) is short; a signal
    that arrives meanwhile takes effect right after it, when the round is complete in the storage.
    (Masking the signal would not do: the kernel hands it to another of the process's threads,
    torch's among them, and Python still raises it in the main thread.)
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:  # now deliver the first one as it would have been
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


def open_storage(url: str, spec: StorageSpec | None = None) -> Storage:
    """Open (creating the schema where needed) a storage; every problem is one ``StorageError`` line."""
    spec = spec or StorageSpec()
    if unsafe(url):  # not shown: a password in it could not be masked reliably
        raise StorageError(f"storage URL (not shown): {UNSAFE}")
    url = normalise(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise StorageError(f"storage URL {mask(url)!r}: unknown scheme or driver {scheme or '(none)'!r}; sscbench "
                           "speaks sqlite:///PATH and postgresql+psycopg://USER@HOST/DATABASE (psycopg 3; the "
                           "password from PGPASSWORD or ~/.pgpass)")
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise StorageError(f"storage URL {mask(url)!r}: folder {path.parent} does not exist")
    shared = scheme != "sqlite"
    kwargs = dict(heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
                  heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=spec.max_retry)
                  ) if shared else {}
    last: Exception | None = None
    for attempt in range(5):  # workers starting at once on an empty database race to create the schema
        try:
            rdb = RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if shared else None, **kwargs)
            return Storage(url, rdb, spec)
        except ImportError as exc:
            raise StorageError(f"storage URL {mask(url)!r}: its database driver is not installed ({exc})") from None
        except (SQLAlchemyError, ValueError, OSError, KeyError, IndexError) as exc:  # bad URL (Optuna formats
            # it as a template, so braces fail), unreachable server, schema race
            last = exc
            message = str(exc).lower()
            if "already exists" not in message and "duplicate key" not in message and "unique" not in message:
                break
            time.sleep(0.1 * (attempt + 1))
    first_line = str(last).strip().splitlines()[0] if last is not None and str(last).strip() else type(last).__name__
    hint = ("; the server wants a password: give it through PGPASSWORD or a password file (~/.pgpass, or the "
            "file PGPASSFILE names)") if "password" in first_line.lower() else ""
    raise StorageError(f"storage URL {mask(url)!r} cannot be used: {mask(first_line)}{hint}")
