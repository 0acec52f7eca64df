"""The tuning stage: Optuna TPE studies whose trials train as stacks.

What it is: PROTOCOL.md's tuning (TPE, log-uniform lr / weight_decay / plugin
ranges, model seed 0 for every trial, objective = best validation accuracy over
the trial's epochs) run through Optuna's ask/tell interface, a round of trials
at a time. TPE's constant liar keeps the trials of one round apart; the round
trains as one stack. Studies live in an Optuna storage (SQLite by default), so
an interrupted study resumes: completed trials are kept, the round the
interruption cut short is trained again with the same hyperparameters, and
the sampler continues from the random state it had after asking that round,
so a resumed study ends with the same trials as an uninterrupted one. It
stops at exactly the requested number of completed trials.
What it is not: the CLI (no printing) or the results file (``sscbench.results``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import optuna
from optuna.trial import TrialState

from sscbench.contracts.task import Run
from sscbench.engine.trainer import Member, stack_progress, train_stack
from sscbench.output.results import Budget, StudyRecord, TrialRecord
from sscbench.regularizer import Regularizer
from sscbench.spec import RunSpec, SearchRange
from sscbench.stages.storage import JOB_ATTR, POLL_SECONDS, Storage, job_record, requeue, uninterrupted

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TuningError(RuntimeError):
    """A study that cannot go on (too many failed trials, incompatible storage)."""


@dataclass(frozen=True)
class TrialDone:
    """Reported after every trial: how many are complete and the best value so far."""

    completed: int
    total: int
    best_value: float | None


def search_space(spec: RunSpec, plugin: Regularizer) -> dict[str, SearchRange]:
    """lr and weight_decay from the spec, then the plugin's own ranges."""
    return {"lr": spec.tune.lr, "weight_decay": spec.tune.weight_decay, **plugin.search_space}


def fixed_params(plugin: Regularizer) -> dict[str, float]:
    """Plugin hyperparameters outside its search space: held at their defaults."""
    return {k: v for k, v in plugin.defaults().items() if k not in plugin.search_space}


def make_pruner(spec: RunSpec) -> optuna.pruners.BasePruner:
    """The study's pruner (``tune.pruner``); trials report their best validation accuracy so far per epoch."""
    if spec.tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if spec.tune.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.tune.epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def default_study_name(run: Run, plugin: Regularizer, sampler_seed: int) -> str:
    """Plugin, sampler seed and a hash of everything that changes what a trial means.

    The trial count is left out on purpose: asking for more trials resumes the same study.
    """
    spec = run.spec
    key = "|".join([
        spec.data.model_dump_json(), run.key,
        spec.train.model_dump_json(exclude={"device", "threads", "workers"}
                                   | ({"cpu_kernels"} if spec.train.cpu_kernels == "native" else set())),
        spec.tune.model_dump_json(include={"epochs", "model_seed", "lr", "weight_decay"}
                                  | ({"pruner"} if spec.tune.pruner != "none" else set())),
        repr(sorted((k, v.model_dump_json()) for k, v in plugin.search_space.items())),
        repr(sorted(fixed_params(plugin).items())),
    ])
    return f"{plugin.name}-s{sampler_seed}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _suggest(trial: optuna.Trial, space: dict[str, SearchRange]) -> dict[str, float]:
    return {k: trial.suggest_float(k, r.low, r.high, log=r.log) for k, r in space.items()}


EPOCHS_ATTR = "sscbench_epochs"  # trial user attribute: epochs it trained (its share of the compute)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards tune.trials


def _record(t: optuna.trial.FrozenTrial) -> TrialRecord:
    duration = t.duration.total_seconds() if t.duration is not None else None
    value = t.value if t.state in FINISHED else None
    params = {k: float(v) for k, v in t.params.items()} | {
        k: float(v) for k, v in t.user_attrs.get("fixed_params", {}).items()}
    return TrialRecord(number=t.number, state=t.state.name, params=params, value=value, duration_s=duration,
                       epochs=t.user_attrs.get(EPOCHS_ATTR))


def budget(trials: list[optuna.trial.FrozenTrial]) -> Budget:
    """What a study's trials cost: model-epochs trained and the wall time of its rounds.

    A round's trials train as one stack, so its wall time is counted once (its longest trial's).
    """
    rounds: dict[object, float] = {}
    for t in trials:
        if t.duration is not None:
            key = t.user_attrs.get(ROUND_ATTR, f"trial {t.number}")
            rounds[key] = max(rounds.get(key, 0.0), t.duration.total_seconds())
    return Budget(model_epochs=sum(int(t.user_attrs.get(EPOCHS_ATTR, 0)) for t in trials),
                  train_seconds=sum(rounds.values()),
                  complete=sum(t.state == TrialState.COMPLETE for t in trials),
                  pruned=sum(t.state == TrialState.PRUNED for t in trials))


def study_record(study: optuna.Study, storage: str, sampler_seed: int) -> StudyRecord:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None  # first of equal values
    return StudyRecord(study_name=study.study_name, storage=storage, sampler_seed=sampler_seed,
                       trials=[_record(t) for t in trials], best=_record(best) if best else None,
                       budget=budget(trials))


ROUND_ATTR = "sscbench_round"  # trial user attribute: the round (stack) that trains it
SAMPLER_STATE_ATTR = "sscbench_sampler_state"  # study user attribute: RNG state after the last round asked


def _rng_states(sampler: optuna.samplers.TPESampler) -> list[np.random.RandomState]:
    """TPE's two random streams (its own and its start-up random sampler's).

    Optuna offers no public way to save them; these attributes are those of the pinned Optuna.
    """
    return [sampler._rng.rng, sampler._random_sampler._rng.rng]


def _encode_state(sampler: optuna.samplers.TPESampler) -> list[list[object]]:
    out = []
    for rng in _rng_states(sampler):
        name, keys, pos, has_gauss, cached = rng.get_state()
        out.append([name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)])
    return out


def _restore_state(sampler: optuna.samplers.TPESampler, state: list[list[object]]) -> None:
    for rng, (name, keys, pos, has_gauss, cached) in zip(_rng_states(sampler), state, strict=True):
        rng.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def _interrupted_round(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Every trial of the round an interruption cut short (none if there was no such round).

    RUNNING trials that belong to no round (left by another tool) are marked failed.
    """
    trials = study.get_trials(deepcopy=False)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    rounds = {t.user_attrs.get(ROUND_ATTR) for t in running}
    for t in running:
        if t.user_attrs.get(ROUND_ATTR) is None:
            study.tell(t.number, state=TrialState.FAIL)
    rounds.discard(None)
    if not rounds:
        return []
    last = max(rounds)
    return [t for t in trials if t.user_attrs.get(ROUND_ATTR) == last]


def _member(trial_params: dict[str, float], model_seed: int) -> Member:
    return Member(model_seed, trial_params["lr"], trial_params["weight_decay"],
                  {k: v for k, v in trial_params.items() if k not in ("lr", "weight_decay")})


def _ask_round(study: optuna.Study, sampler: optuna.samplers.TPESampler, count: int, spec: RunSpec,
               space: dict[str, SearchRange], fixed: dict[str, float], sampler_seed: int
               ) -> tuple[list[int], list[Member]]:
    """Ask ``count`` trials (queued retries first) with the sampler state the study saved last."""
    saved = study.user_attrs.get(SAMPLER_STATE_ATTR)
    if saved is not None:
        _restore_state(sampler, saved["state"])
    round_no = saved["round"] + 1 if saved else 0
    trials = [study.ask() for _ in range(count)]
    members = []
    for trial in trials:
        sampled = _suggest(trial, space)  # a retried trial returns its original parameters
        trial.set_user_attr("fixed_params", fixed)
        trial.set_user_attr("sampler_seed", sampler_seed)
        trial.set_user_attr(ROUND_ATTR, round_no)
        members.append(_member(sampled | fixed, spec.tune.model_seed))
    study.set_user_attr(SAMPLER_STATE_ATTR, {"round": round_no, "state": _encode_state(sampler)})
    return [t.number for t in trials], members


def _pruning(study: optuna.Study, numbers: list[int], ids: list[int], to_tell: set[int]):
    """The trainer's ``prune`` hook for one round: every member reports its best validation accuracy so far,
    then the study's pruner decides for each (so a decision never depends on the order of the reports)."""
    trials = [optuna.trial.Trial(study, trial_id) for trial_id in ids]
    best = [-math.inf] * len(ids)

    def prune(epoch: int, indices: list[int], values: np.ndarray) -> list[int]:
        asked = [i for i in indices if numbers[i] in to_tell]
        with warnings.catch_warnings():  # a round trained again reports the steps it reported before
            warnings.simplefilter("ignore")
            for i, value in zip(indices, values, strict=True):
                if numbers[i] in to_tell and math.isfinite(float(value)):
                    best[i] = max(best[i], float(value))
                    trials[i].report(best[i], epoch)
        return [i for i in asked if trials[i].should_prune()]

    return prune


def _give_back(storage: Storage, study: optuna.Study, numbers: set[int]) -> None:
    """On a shared storage, an interrupted worker's untold trials are failed and queued again at once."""
    if not storage.shared:
        return  # SQLite: they stay RUNNING and the next run on the study trains their round again
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number in numbers:
            requeue(study, trial.number, storage.spec.max_retry)


def run_study(
    run: Run,
    plugin: Regularizer,
    storage: Storage,
    study_name: str,
    sampler_seed: int,
    on_trial: Callable[[TrialDone], None] | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    wait: bool = True,
) -> StudyRecord | None:
    """Run, resume or join one study until it holds ``spec.tune.trials`` completed trials.

    On a shared storage several workers may run this for the same study at once:
    each asks what the study still needs under the study's lock, beats for its
    trials, and waits while others finish theirs; with ``wait=False`` it returns
    None instead of waiting, so the caller can do other work meanwhile.
    """
    spec, dataset = run.spec, run.dataset()
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, constant_liar=True)
    study = storage.create_study(study_name, sampler, make_pruner(spec))
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuningError(f"study '{study_name}' in {storage.masked} is not a maximisation study")
    space, fixed = search_space(spec, plugin), fixed_params(plugin)
    target, arch = spec.tune.trials, run.architecture

    def completed() -> list[optuna.trial.FrozenTrial]:
        return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def finished() -> int:
        return len(study.get_trials(deepcopy=False, states=FINISHED))

    failures_left = target  # a study whose every trial diverges must still end
    with storage.lease(study_name):
        job = job_record({"kind": "tune", "spec": json.loads(spec.model_dump_json()), "plugin": plugin.name,
                          "sampler_seed": sampler_seed})
        if study.user_attrs.get(JOB_ATTR) != job:  # the latest request: a worker serves it up to this target
            study.set_user_attr(JOB_ATTR, job)
        pending = [] if storage.shared else _interrupted_round(study)
        to_tell: set[int] = set()  # asked by this process and not told yet
        try:
            while True:
                with storage.serial(study_name):
                    if pending:  # the round an interruption cut short, trained again as the same stack
                        numbers = [t.number for t in pending]
                        members = [_member(dict(t.params) | t.user_attrs.get("fixed_params", {}),
                                           spec.tune.model_seed) for t in pending]
                        to_tell = {t.number for t in pending if t.state == TrialState.RUNNING}
                        pending = []
                    else:
                        storage.fail_stale(study)
                        states = [t.state for t in study.get_trials(deepcopy=False)]
                        done = states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED)
                        running = states.count(TrialState.RUNNING)
                        if done >= target:
                            break
                        count = min(spec.tune.round_size, target - done - running)
                        with uninterrupted():
                            numbers, members = ([], []) if count <= 0 else _ask_round(
                                study, sampler, count, spec, space, fixed, sampler_seed)
                            storage.claim(study.get_trials(deepcopy=False)[n]._trial_id for n in numbers)
                            to_tell = set(numbers)
                if not numbers:  # other workers hold the rest of the study's trials
                    if not wait:
                        return None
                    time.sleep(POLL_SECONDS)
                    continue
                ids = [study.get_trials(deepcopy=False)[n]._trial_id for n in numbers]
                with storage.heartbeat(ids):
                    hook = stack_progress(len(members), on_epoch) if on_epoch else None
                    prune = _pruning(study, numbers, ids, to_tell) if spec.tune.pruner != "none" else None
                    history = train_stack(dataset.train, arch, members, plugin, spec.tune.epochs, spec.train,
                                          {"validation": dataset.validation}, hook, prune=prune)
                for k, (number, curve) in enumerate(zip(numbers, history.accuracy["validation"], strict=True)):
                    if number not in to_tell:
                        continue
                    optuna.trial.Trial(study, ids[k]).set_user_attr(EPOCHS_ATTR, history.member_epochs[k])
                    value = float(np.nanmax(curve)) if not np.isnan(curve).all() else math.nan
                    if history.pruned_at[k] is not None:  # its value: the last it reported (its best so far)
                        study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
                    elif math.isfinite(value):
                        study.tell(number, value, skip_if_finished=True)
                    else:
                        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
                        failures_left -= 1
                    if on_trial is not None:
                        best = completed()
                        on_trial(TrialDone(finished(), target, max((t.value for t in best), default=None)))
                to_tell = set()
                if failures_left <= 0:
                    raise TuningError(f"study '{study_name}': {target} trials failed (diverged); giving up")
        except BaseException:
            _give_back(storage, study, to_tell)
            raise
    return study_record(study, storage.masked, sampler_seed)
