"""Shared work in an Optuna storage: evaluation units as queued trials, and what a worker serves.

What it is: an evaluation's units (the arms of one regularizer, trained as one
stack) queued as WAITING trials of an evaluation study. Any process working on
the same evaluation (a second `sscbench evaluate` or `compare`, or `sscbench
worker`) asks for the next unit, beats for it while it trains, and stores the
unit's per-arm results as a user attribute of the trial; every process then
reads all units' results back, so each writes the same results file a single
process writes. A finished unit is never trained again: an interrupted
evaluation resumes with the units that were left. Every study sscbench creates
records how to run it (``JOB_ATTR``), so ``serve`` can take up any study that
still needs work.
What it is not: the training (``sscbench.evaluation``, ``sscbench.tuning``) or
the storage mechanics (``sscbench.storage``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import optuna
from optuna.trial import TrialState

from sscbench.contracts import registry, task
from sscbench.contracts.task import Run
from sscbench.output.results import ArmResult
from sscbench.spec import RunSpec
from sscbench.stages import evaluation, tuning
from sscbench.stages.arms import ResolvedArm
from sscbench.stages.storage import JOB_ATTR, POLL_SECONDS, Storage, StorageError, job_record, requeue, uninterrupted

UNIT_ATTR = "sscbench_unit"
RESULTS_ATTR = "sscbench_arm_results"


def evaluation_study_name(run: Run, arms: Sequence[ResolvedArm], seeds: Sequence[int]) -> str:
    """A name that changes with everything deciding a unit's results, the code included, and with nothing else.

    An arm's ``source`` (which results file, study and trial its hyperparameters came from) is left out: a
    tuning trial retried after a kill gets a new number but the same parameters, and must find the same units.
    """
    spec = run.spec
    described = [{k: v for k, v in asdict(a).items() if k != "source"} for a in arms]
    key = "|".join([
        spec.data.model_dump_json(), run.key,
        spec.train.model_dump_json(exclude={"device", "threads", "workers"}), str(spec.evaluate.epochs),
        json.dumps(list(seeds)), json.dumps(described, sort_keys=True),
        registry.code_fingerprint([a.regularizer for a in arms], [spec.workload.name]),
    ])
    return f"evaluate-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _queue_missing(study: optuna.Study, trials: list[optuna.trial.FrozenTrial], units: int) -> bool:
    """Queue every unit that has no finished, running or queued trial (first call, or after retries ran out).

    True when a unit is waiting to be asked for.
    """
    live = {t.user_attrs.get(UNIT_ATTR) for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)}
    for unit in range(units):
        if unit not in live:
            study.enqueue_trial({}, user_attrs={UNIT_ATTR: unit})
    return len(live) < units or any(t.state == TrialState.WAITING for t in trials)


def run_shared_evaluation(
    run: Run,
    arms: list[ResolvedArm],
    storage: Storage,
    seeds: Sequence[int],
    on_epoch: Callable[[str, int, float], None] | None = None,
    wait: bool = True,
) -> list[ArmResult] | None:
    """Evaluate every arm through the storage's evaluation study; results in the order of ``arms``.

    With ``wait=False`` it returns None when the units left are all held by other workers.
    """
    groups = evaluation.units(arms)
    spec = run.spec
    name = evaluation_study_name(run, arms, seeds)
    study = storage.create_study(name, optuna.samplers.RandomSampler(seed=0))
    with storage.lease(name):
        with storage.serial(name), uninterrupted():
            trials = study.get_trials(deepcopy=False)
            if JOB_ATTR not in study.user_attrs:
                job = {"kind": "evaluate", "spec": json.loads(spec.model_dump_json()),
                       "arms": [asdict(a) for a in arms], "seeds": list(seeds)}
                study.set_user_attr(JOB_ATTR, job_record(job))
            if not storage.shared:  # this process holds the study: RUNNING units were left by a dead one
                for t in trials:
                    if t.state == TrialState.RUNNING:
                        requeue(study, t.number, None)
        held: int | None = None  # the unit trial this process asked and has not told
        try:
            while True:
                with storage.serial(name):
                    storage.fail_stale(study)
                    trials = study.get_trials(deepcopy=False)
                    done = {t.user_attrs[UNIT_ATTR] for t in trials if t.state == TrialState.COMPLETE}
                    if len(done) == len(groups):
                        break
                    with uninterrupted():
                        trial = study.ask() if _queue_missing(study, trials, len(groups)) else None
                        if trial is not None:
                            storage.claim([trial._trial_id])
                            held = trial.number
                if trial is None:  # other workers hold the remaining units
                    if not wait:
                        return None
                    time.sleep(POLL_SECONDS)
                    continue
                unit = trial.user_attrs[UNIT_ATTR]
                if unit in done:  # a retry of a unit that finished meanwhile
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                    held = None
                    continue
                with storage.heartbeat([trial._trial_id]):
                    results = evaluation.evaluate_unit(run, groups[unit], seeds, on_epoch)
                trial.set_user_attr(RESULTS_ATTR, [json.loads(r.model_dump_json()) for r in results])
                study.tell(trial, 1.0, skip_if_finished=True)
                held = None
        except BaseException:
            if storage.shared and held is not None:  # queue it again now rather than after the grace period
                requeue(study, held, None)
            raise
    finished: dict[str, ArmResult] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        for raw in t.user_attrs[RESULTS_ATTR]:
            finished.setdefault(raw["name"], ArmResult.model_validate(raw))
    # the unit may have been trained by a run whose parameters came from elsewhere (the name leaves the source
    # out): the record says where this run's came from
    return [finished[a.name].model_copy(update={"params_source": a.source}) for a in arms]


def _pending(study: optuna.Study, job: dict) -> bool:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    if job["kind"] == "tune":
        return states.count(TrialState.COMPLETE) < job["spec"]["tune"]["trials"]
    groups = len(evaluation.units([ResolvedArm(**_arm(a)) for a in job["arms"]]))
    done = {t.user_attrs.get(UNIT_ATTR) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    return len(done) < groups


def _arm(raw: dict) -> dict:
    return raw | {"defaults_used": tuple(raw["defaults_used"]),
                  "studies": tuple((name, params) for name, params in raw["studies"])}


def serve_study(storage: Storage, name: str, job: dict,
                on_epoch: Callable[[str, int, float], None] | None = None,
                datasets: task.Datasets | None = None) -> None:
    """Work on one study as the process that created it would (``datasets``: those already loaded)."""
    spec = RunSpec.model_validate(job["spec"])
    hook = (lambda e, share: on_epoch(name, e, share)) if on_epoch else None
    if job["kind"] == "tune":
        run = task.resolve_run(spec, [job["plugin"]], datasets)
        tuning.run_study(run, run.plugin(job["plugin"]), storage, name, job["sampler_seed"], on_epoch=hook)
    else:
        arms = [ResolvedArm(**_arm(a)) for a in job["arms"]]
        run = task.resolve_run(spec, [a.regularizer for a in arms], datasets)
        run_shared_evaluation(run, arms, storage, job["seeds"], on_epoch)


def pending_studies(storage: Storage) -> list[tuple[str, dict]]:
    """Studies in the storage that sscbench created and that still need work, oldest first."""
    out = []
    for summary in optuna.get_all_study_summaries(storage.rdb, include_best_trial=False):
        job = summary.user_attrs.get(JOB_ATTR)
        if job is None:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage.rdb)
        if _pending(study, job):
            out.append((summary.study_name, job))
    return out


def serve(storage: Storage, until_empty: bool, on_study: Callable[[str], None] | None = None,
          on_epoch: Callable[[str, int, float], None] | None = None, poll: float = 5.0) -> list[str]:
    """Serve pending studies until none is left that this process can work on (``until_empty``) or forever.

    Returns the names of the studies it worked on. A SQLite study that another process holds is left to it.
    """
    served: list[str] = []
    datasets = task.Datasets(limit=4)  # a replicate's studies (its tuning, its evaluation) share its dataset
    while True:
        progressed = False
        for name, job in pending_studies(storage):
            if on_study:
                on_study(name)
            try:
                serve_study(storage, name, job, on_epoch, datasets)
            except StorageError:
                if storage.shared:
                    raise
                continue
            served.append(name)
            progressed = True
        if not progressed:
            if until_empty:
                return served
            time.sleep(poll)
