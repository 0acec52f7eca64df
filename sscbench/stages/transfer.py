"""Copy every study of one sscbench storage into another (``sscbench copy-storage``): a run begun on SQLite
moves to PostgreSQL, where more workers can join it, or a PostgreSQL run is backed up into a SQLite file.

Every study (tuning trials, evaluation units, the sampler's saved state, the jobs workers serve) is copied
trial by trial, in order, so trial numbers are kept, then read back and compared. All or nothing: a study name
the destination already holds refuses the copy before anything is written, and a failure or Ctrl-C part-way
deletes what was copied (and a SQLite file the copy created). The source must be idle: a SQLite study another
process works on is refused (its lock), and so is a PostgreSQL study with a trial whose worker beat within the
grace period. A trial left RUNNING by a stopped process is copied as it is. On SQLite the next run trains it
again under its own number; on PostgreSQL it is failed and trained again as a retry under a new number, as a
dead worker's trial is: the same parameters and the same results, and records name the new number.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import timedelta

import optuna
from optuna.trial import FrozenTrial, TrialState

from sscbench.redact import mask
from sscbench.stages.storage import Storage, StorageError, normalise, open_storage, sqlite_path, uninterrupted


class CopyError(StorageError):
    """A copy that cannot be made; nothing was written."""


def shown(url: str) -> str:
    """A storage URL as messages show it: normalised, its password masked."""
    return mask(normalise(url))


def study_names(storage: Storage) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage.rdb, include_best_trial=False))


def live_trials(storage: Storage, name: str) -> int:
    """RUNNING trials of a shared storage's study whose worker beat within the grace period."""
    study = optuna.load_study(study_name=name, storage=storage.rdb)
    running = [t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if not running:
        return 0
    from sqlalchemy import bindparam, text

    query = text("SELECT trial_id, MAX(heartbeat) FROM trial_heartbeats WHERE trial_id IN :ids "
                 "GROUP BY trial_id").bindparams(bindparam("ids", expanding=True))
    with storage.rdb.engine.connect() as conn:
        beats = [row[1] for row in conn.execute(query, {"ids": running})]
    # heartbeats are the database server's clock, read as Optuna reads them (its time zone dropped)
    with storage.rdb.engine.connect() as conn:
        now = conn.execute(text("SELECT CURRENT_TIMESTAMP")).scalar().replace(tzinfo=None)
    grace = timedelta(seconds=storage.spec.grace_period)
    return sum(1 for beat in beats if now - beat < grace)


def _same(a: FrozenTrial, b: FrozenTrial) -> bool:
    return (a.number, a.state, a.values, a.params, a.distributions, a.user_attrs, a.system_attrs,
            a.intermediate_values, a.datetime_start, a.datetime_complete) == \
        (b.number, b.state, b.values, b.params, b.distributions, b.user_attrs, b.system_attrs,
         b.intermediate_values, b.datetime_start, b.datetime_complete)


def _check_copy(source: Storage, destination: Storage, name: str) -> int:
    """The trials of the copied study, once it reads back as its source does."""
    before = optuna.load_study(study_name=name, storage=source.rdb)
    after = optuna.load_study(study_name=name, storage=destination.rdb)
    old, new = before.get_trials(deepcopy=False), after.get_trials(deepcopy=False)
    if before.user_attrs != after.user_attrs or len(old) != len(new) or \
            not all(_same(a, b) for a, b in zip(old, new, strict=True)):
        raise CopyError(f"study '{name}' reads back differently from {destination.masked}")
    return len(new)


def copy_storage(from_url: str, to_url: str) -> list[tuple[str, int]]:
    """Copy every study of ``from_url`` into ``to_url``; returns (name, trials) per study copied."""
    if normalise(from_url) == normalise(to_url):
        raise CopyError(f"{mask(from_url)!r} is both the source and the destination")
    given = sqlite_path(normalise(from_url))
    if given is not None and not given.is_file():  # opening it would make an empty database there
        raise CopyError(f"{shown(from_url)}: no such SQLite file, nothing to copy")
    source = open_storage(from_url)
    names = study_names(source)
    if not names:
        raise CopyError(f"{source.masked} holds no study: nothing to copy")
    path = sqlite_path(normalise(to_url))
    fresh = path is not None and not path.exists()  # a SQLite file this copy creates: removed if it fails
    try:
        return _copy(source, open_storage(to_url), names)
    except BaseException:
        if fresh:
            for leftover in (path, path.with_name(path.name + ".lock")):
                leftover.unlink(missing_ok=True)
        raise


def _copy(source: Storage, destination: Storage, names: list[str]) -> list[tuple[str, int]]:
    clash = sorted(set(names) & set(study_names(destination)))
    if clash:
        more = f" (and {len(clash) - 1} more)" if len(clash) > 1 else ""
        raise CopyError(f"{destination.masked} already holds study '{clash[0]}'{more}: nothing copied; "
                        "copy into an empty storage")
    copied: list[tuple[str, int]] = []
    with ExitStack() as held:
        for name in names:  # SQLite: no other process may work on a study while it is copied
            held.enter_context(source.lease(name))
            held.enter_context(destination.lease(name))
            if source.shared and (live := live_trials(source, name)):
                raise CopyError(f"study '{name}' in {source.masked} has {live} trial(s) a live worker is "
                                "training: stop its workers first")
        try:
            for name in names:
                optuna.copy_study(from_study_name=name, from_storage=source.rdb, to_storage=destination.rdb)
                copied.append((name, _check_copy(source, destination, name)))
        except BaseException:
            with uninterrupted():  # the destination is left as it was, even on a second Ctrl-C
                for name in names:
                    try:
                        optuna.delete_study(study_name=name, storage=destination.rdb)
                    except KeyError:
                        pass
            raise
    return copied
