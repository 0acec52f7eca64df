"""The compare stage: replicated comparisons that re-draw every source of variance.

What it is: R complete protocol runs (replicates) of the same arms. Replicate r
draws its own data (mnist1d regenerated with data seed ``data.seed + r``), its
own tuning run (sampler seed ``tune.sampler_seed + r``, every arm tuned afresh
unless ``compare.tune = "once"``) and its own model seeds (``r N .. r N + N - 1``;
the tuning trials use the first of them, as the protocol uses seed 0). So
replicate 0 is the protocol itself and gives ``sscbench reproduce``'s numbers.
Arms are paired within a replicate (same data, same model seeds), and the
decision is made over replicates (``sscbench.stats.replicates``).

With ``compare.replicates = 'auto'`` replicates are added in index order and a
look is taken after the first ``min_replicates`` and then after every ``batch``
(``sscbench.stats.sequential``): each arm against the reference is its own
sequential comparison, alpha split over them (Bonferroni). An arm whose
comparison has decided is not trained in later replicates (unless an open
comparison takes its hyperparameters), and the run ends when every comparison
has decided or ``max_replicates`` ran. The decision is a pure function of the
replicates recorded so far, so a resumed run reaches the same decision at the
same n, and replicates finished past a stop (by workers) are shown but unused.

Each finished replicate is a checkpoint file under
``OUT/compare-replicates/KEY/``, where KEY hashes every setting that decides a
replicate's results (not R, F, gamma or the sequential settings): raising R later, or re-running an
interrupted compare, reuses what is there. Tuning studies live in the Optuna
storage and resume exactly (``sscbench.tuning``).
What it is not: the statistics (``sscbench.stats``) or any output
beyond the results files.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sscbench import data
from sscbench.contracts import registry
from sscbench.contracts.task import Run
from sscbench.engine.host import cpu_info
from sscbench.files import write_atomic
from sscbench.output import results
from sscbench.output.results import (
    ArmAcrossReplicates,
    ArmBudget,
    CompareResult,
    ReplicateArm,
    ReplicateRecord,
    ResultsError,
    TunedPick,
    WorkloadsCompareResult,
    total_budget,
)
from sscbench.spec import RunSpec, SpecError
from sscbench.stages import arms as arms_mod
from sscbench.stages import tuning, workflow, workqueue
from sscbench.stages.storage import Storage, open_storage
from sscbench.stats import paired as stats
from sscbench.stats import replicates as replicate_stats
from sscbench.stats import sequential

DERIVATION = {
    "data_seed": "data.seed + r (mnist1d regenerated: new train, validation and test sets)",
    "sampler_seed": "tune.sampler_seed + r (every arm tuned afresh unless compare.tune = 'once')",
    "tune_model_seed": "tune.model_seed + r * N (the model seed of every tuning trial)",
    "model_seeds": "r * N .. r * N + N - 1 (initialisation and batch order), shared by every arm",
}
SEED_LIMIT = 2**32 - 1  # mnist1d's and TPE's seeds go through NumPy's legacy seeding


@dataclass(frozen=True)
class Replicate:
    """Everything replicate ``index`` derives from its index."""

    index: int
    data_seed: int
    sampler_seed: int
    tune_model_seed: int
    model_seeds: tuple[int, ...]


def replicate(spec: RunSpec, r: int) -> Replicate:
    n = spec.evaluate.seeds
    return Replicate(r, spec.data.seed + r, spec.tune.sampler_seed + r, spec.tune.model_seed + r * n,
                     tuple(range(r * n, r * n + n)))


def replicate_spec(spec: RunSpec, rep: Replicate) -> RunSpec:
    """The spec of one replicate: its data seed, sampler seed and tuning model seed."""
    return spec.model_copy(update={
        "data": spec.data.model_copy(update={"seed": rep.data_seed}),
        "tune": spec.tune.model_copy(update={"sampler_seed": rep.sampler_seed, "model_seed": rep.tune_model_seed}),
    })


def indices(spec: RunSpec) -> range:
    """Every replicate the comparison may run: R of them, or up to max_replicates with 'auto'."""
    return range(spec.compare.first_replicate, spec.compare.first_replicate + spec.compare.planned)


def check(spec: RunSpec) -> None:
    """Refuse, before any work, what a comparison cannot run."""
    last = indices(spec)[-1]
    for field, base in (("data.seed", spec.data.seed), ("tune.sampler_seed", spec.tune.sampler_seed)):
        if base + last > SEED_LIMIT:
            raise SpecError(f"replicate {last} would need {field} = {base} + {last}, past {SEED_LIMIT}: "
                            f"lower {field}, --first-replicate or --replicates")
    if spec.tune.model_seed + (last + 1) * spec.evaluate.seeds > 2**63 - 1:
        raise SpecError("the model seeds of the last replicate go past 2**63 - 1: lower --first-replicate")
    if spec.tune.studies != 1:
        raise SpecError("tune.studies must be 1 in a comparison: its replicates are the independent tuning runs")
    if spec.compare.auto and workflow.reference_arm(workflow.expand_ablations(spec)) is None:
        raise SpecError("--replicates auto decides arms against a reference arm: add the reference arm "
                        f"'{spec.evaluate.reference}' or name one with --reference")


def key(spec: RunSpec) -> str:
    """Hash of every setting that decides a replicate's results (not R, F, gamma or the reference), and the code."""
    dumped = spec.model_dump_json(exclude={
        "train": {"device", "threads", "workers"}, "evaluate": {"reference"}, "storage": True,
        "compare": {"replicates", "first_replicate", "gamma", "min_replicates", "max_replicates", "margin",
                    "batch"}})
    once = f"|tuned-on={spec.compare.first_replicate}" if spec.compare.tune == "once" else ""
    code = registry.code_fingerprint(["baseline", *(a.regularizer for a in spec.evaluate.arms)],
                                     [spec.workload.name])
    return hashlib.sha256((dumped + once + "|code=" + code).encode()).hexdigest()[:12]


def checkpoint_path(out: Path, settings: str, r: int) -> Path:
    """Where replicate ``r`` of the comparison whose ``key`` is ``settings`` is kept."""
    return out / "compare-replicates" / settings / f"replicate-{r}.json"


def to_tune(spec: RunSpec, arms: set[str] | None = None) -> list[str]:
    """Regularizers tuned in a replicate: those of arms with neither params nor ``from``, in arm order
    (of the arms named in ``arms`` and those they take hyperparameters from, when given)."""
    named = spec.evaluate.arms if arms is None else [a for a in spec.evaluate.arms if a.name in sources(spec, arms)]
    return list(dict.fromkeys(a.regularizer for a in named if a.params is None and a.from_ is None))


def sources(spec: RunSpec, arms: set[str]) -> set[str]:
    """``arms`` and every arm they take hyperparameters from, through ``from`` chains."""
    by_name = {a.name: a for a in spec.evaluate.arms}
    found, todo = set(), list(arms)
    while todo:
        name = todo.pop()
        if name in found or name not in by_name:
            continue
        found.add(name)
        if by_name[name].from_ is not None:
            todo.append(by_name[name].from_)
    return found


def derivation(run: Run) -> dict[str, str]:
    """How each replicate's randomness follows from its index, the data's in the workload's own words."""
    return DERIVATION | {"data_seed": run.task.workload.replicate_data}


def covers(spec: RunSpec, resampled: bool = False) -> str:
    data = results.COVERS_RESAMPLE if resampled else "the data draw"
    if spec.compare.tune == "once":
        return (f"{data} and the model seeds (initialisation and batch order), re-drawn in every replicate; "
                f"the tuning run is fixed (tune once: every arm tuned on replicate {spec.compare.first_replicate})")
    return (f"{data}, the tuning run and the model seeds (initialisation and batch order), "
            "all re-drawn in every replicate")


@dataclass(frozen=True)
class Progress:
    """Callbacks a front end may pass; all optional."""

    #: (what starts now, stages done so far, stages in all)
    on_stage: Callable[[str, int, int], None] | None = None
    #: (what trains, epoch, share of the stack that finished it), as ``workflow.Progress.on_epoch``
    on_epoch: Callable[[str, int, float], None] | None = None


def stages(spec: RunSpec, r: int) -> int:
    tuned_here = spec.compare.tune == "per-replicate" or r == spec.compare.first_replicate
    return (len(to_tune(spec)) if tuned_here else 0) + 1


def _tune(run: Run, rep: Replicate, regularizer: str, storage: Storage,
          on_epoch: Callable[[int, float], None] | None, wait: bool = True) -> tuple[TunedPick, int] | None:
    """Run or resume the replicate's study of one plugin; its pick and the model-epochs the study holds.

    None when ``wait`` is False and other workers hold the rest of the study.
    """
    spec, plugin = run.spec, run.plugin(regularizer)
    name = tuning.default_study_name(run, plugin, rep.sampler_seed)
    started = time.perf_counter()
    record = tuning.run_study(run, plugin, storage, name, rep.sampler_seed, None, on_epoch, wait)
    if record is None:
        return None
    best = record.best
    if best is None or best.value is None:
        raise tuning.TuningError(f"study '{name}' has no completed trial")
    return TunedPick(
        regularizer=regularizer, tuned_in=rep.index, study_name=name, storage=storage.masked,
        sampler_seed=rep.sampler_seed, data_seed=rep.data_seed, model_seed=rep.tune_model_seed,
        trials_complete=sum(t.state == "COMPLETE" for t in record.trials), best_trial=best.number,
        best_value=best.value, params=dict(best.params), wall_seconds=time.perf_counter() - started,
        budget=record.budget,
    ), record.budget.model_epochs if record.budget else len(record.trials) * spec.tune.epochs


def run_replicate(run: Run, settings: str, rep: Replicate, out: Path, storage: Storage,
                  once: dict[str, TunedPick], progress: Progress = Progress(), done: int = 0, total: int = 0,
                  wait: bool = True, arms: set[str] | None = None) -> ReplicateRecord | None:
    """One complete protocol run of the comparison ``run`` (whose ``key`` is ``settings``); ``once``
    holds the picks reused under ``compare.tune = 'once'``. ``arms``: train only these (of the
    expanded arms; default all), tuning what they need.

    With ``wait=False`` (workers sharing a storage) it does what work it can and returns None
    where the rest is held by other workers.
    """
    spec = run.spec
    run_r = run.with_spec(replicate_spec(spec, rep))  # its data seed: its own dataset, loaded once
    expanded = workflow.expand_ablations(spec)
    every = [a.name for a in expanded.evaluate.arms]
    train = set(every) if arms is None else set(arms) & set(every)
    needed = sources(expanded, train)
    picks: dict[str, TunedPick] = {}
    model_epochs = 0
    started = time.perf_counter()
    wanted = to_tune(expanded, needed)
    for regularizer in wanted:
        if regularizer in once:
            picks[regularizer] = once[regularizer]
            continue
        label = f"replicate {rep.index}: tune {regularizer}"
        if progress.on_stage:
            progress.on_stage(label, done, total)
        hook = (lambda e, share, label=label: progress.on_epoch(label, e, share)) if progress.on_epoch else None
        tuned_here = _tune(run_r, rep, regularizer, storage, hook, wait)
        if tuned_here is not None:
            picks[regularizer], spent = tuned_here
            model_epochs += spent
        done += 1
    if len(picks) < len(wanted):
        return None
    tune_seconds = time.perf_counter() - started

    started = time.perf_counter()
    run_e = run_r.with_spec(workflow.expand_ablations(run_r.spec))
    spec_e = run_e.spec
    tuned = {reg: (p.params, f"tuned in replicate {p.tuned_in} (study {p.study_name}, trial {p.best_trial}, "
                             f"value {p.best_value:.4f})") for reg, p in picks.items()}
    resolved = arms_mod.resolve([a for a in spec_e.evaluate.arms if a.name in needed], out, spec_e, tuned=tuned)
    resolved = [a for a in resolved if a.name in train]
    label = f"replicate {rep.index}: evaluate"
    if progress.on_stage:
        progress.on_stage(label, done, total)
    hook = (lambda _arms, e, share: progress.on_epoch(label, e, share)) if progress.on_epoch else None
    arm_results = workqueue.run_shared_evaluation(run_e, resolved, storage, rep.model_seeds, hook, wait)
    if arm_results is None:
        return None
    configs = {(a.regularizer, tuple(sorted(a.params.items()))) for a in resolved}
    model_epochs += len(configs) * len(rep.model_seeds) * spec.evaluate.epochs
    arms = [ReplicateArm(
        name=a.name, regularizer=a.regularizer, params=a.params, params_source=a.params_source,
        test_accuracy=a.test_accuracy, diverged=a.diverged, score=a.mean,
        spectral_consistency=a.diagnostics.spectral_consistency,
        reg_share=a.diagnostics.reg_share[-1] if a.diagnostics.reg_share else None,
    ) for a in arm_results]
    return ReplicateRecord(
        key=settings, index=rep.index, data_seed=rep.data_seed, sampler_seed=rep.sampler_seed,
        tune_model_seed=rep.tune_model_seed, model_seeds=list(rep.model_seeds), tuning=list(picks.values()),
        arms=arms, not_trained=[n for n in every if n not in train], tune_seconds=tune_seconds,
        evaluate_seconds=time.perf_counter() - started,
        model_epochs=model_epochs, cpu=cpu_info(),
    )


def load_checkpoint(path: Path, settings: str, r: int) -> ReplicateRecord | None:
    """A finished replicate, if its checkpoint exists; a file that does not match is refused."""
    if not path.exists():
        return None
    record = results.load(path, ReplicateRecord)
    if record.key != settings or record.index != r:
        raise ResultsError(f"{path} holds replicate {record.index} of settings {record.key}, expected replicate "
                           f"{r} of {settings}: move it away to recompute it")
    return record


def _has(record: ReplicateRecord, arm: str) -> bool:
    return any(a.name == arm for a in record.arms)


def _matrix(records: list[ReplicateRecord], arm: str) -> np.ndarray:
    """[R, N] test accuracies of ``arm`` (NaN: a diverged seed, or the arm not trained in that replicate)."""
    n = max((len(rec.model_seeds) for rec in records), default=0)
    rows = [next((a.test_accuracy for a in rec.arms if a.name == arm), [None] * n) for rec in records]
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float).reshape(len(rows), n)


def _across(records: list[ReplicateRecord], name: str, regularizer: str) -> ArmAcrossReplicates:
    scores = replicate_stats.scores(_matrix(records, name))
    finite = scores[np.isfinite(scores)]
    return ArmAcrossReplicates(
        name=name, regularizer=regularizer, scores=[results.finite_or_none(float(s)) for s in scores],
        mean=float(finite.mean()) if finite.size else None,
        std_ddof1=float(finite.std(ddof=1)) if finite.size > 1 else None,
        min=float(finite.min()) if finite.size else None, max=float(finite.max()) if finite.size else None,
    )


def p_star(min_n: int, max_n: int, alpha: float) -> float:
    """The calibrated p* (``sequential.calibrate_p_star``), kept in the data cache folder once computed.

    The cache is only a shortcut: an unreadable or unwritable cache means computing it again (about 2 s).
    """
    key = f"{min_n},{max_n},{alpha!r},{sequential.PATHS},{sequential.CALIBRATION_SEED}"
    path = data.default_cache_dir() / "sequential-p-star.json"
    try:
        cached = json.loads(path.read_text())
        value = cached.get(key) if isinstance(cached, dict) else None
        if isinstance(value, float) and 0 < value < 1:
            return value
    except (OSError, ValueError):
        cached = {}
    value = sequential.calibrate_p_star(min_n, max_n, alpha)
    try:
        write_atomic(path, json.dumps((cached if isinstance(cached, dict) else {}) | {key: value}, indent=1))
    except OSError:
        pass
    return value


def _pairs(records: list[ReplicateRecord], arm: str, reference: str
           ) -> tuple[list[ReplicateRecord], np.ndarray, np.ndarray]:
    """The replicates that trained both arms, in index order, and their [R, N] accuracies."""
    both = [rec for rec in records if _has(rec, arm) and _has(rec, reference)]
    return both, _matrix(both, arm), _matrix(both, reference)


def family_size(spec: RunSpec) -> int:
    """Comparisons of one workload: every arm against the reference (at least 1)."""
    expanded = workflow.expand_ablations(spec)
    reference = workflow.reference_arm(expanded)
    return max(1, sum(a.name != reference for a in expanded.evaluate.arms)) if reference else 1


def sequential_state(spec: RunSpec, records: list[ReplicateRecord], reference: str, arm: str, comparisons: int,
                     complete: bool) -> tuple[sequential.Sequential, list[ReplicateRecord], np.ndarray]:
    """The sequential decision of ``arm`` against ``reference`` over the records in index order (pure), the
    replicates that trained both arms and their per-replicate differences (NaN where an arm has no score)."""
    both, a, b = _pairs(records, arm, reference)
    diffs = replicate_stats.scores(a) - replicate_stats.scores(b) if both else np.zeros(0)
    c = spec.compare
    decision = sequential.sequential(
        diffs[np.isfinite(diffs)], min_n=c.min_replicates, max_n=c.max_replicates, margin=c.margin / 100,
        alpha=stats.ALPHA, comparisons=comparisons, batch=c.batch, gamma=c.gamma, margin_points=c.margin,
        complete=complete, p_star=p_star(c.min_replicates, c.max_replicates, stats.ALPHA / comparisons))
    return decision, both, diffs


def open_arms(spec: RunSpec, records: list[ReplicateRecord], reference: str, comparisons: int) -> list[str]:
    """The arms whose comparison with the reference has not decided yet (pure).

    An arm that has trained in ``min_replicates`` replicates without one difference to decide on
    (every seed of it, or of the reference, diverged each time) is closed too: it has nothing to
    compare, as in ``evaluate``, and training it further would only repeat that.
    """
    arms = [a.name for a in workflow.expand_ablations(spec).evaluate.arms if a.name != reference]
    still = []
    for arm in arms:
        decided, both, diffs = sequential_state(spec, records, reference, arm, comparisons, False)
        if decided.decision is None and not (len(both) >= spec.compare.min_replicates and
                                             not np.isfinite(diffs).any()):
            still.append(arm)
    return still


def summarise(spec: RunSpec, records: list[ReplicateRecord], reference: str | None, comparisons: int = 1
              ) -> tuple[list[ArmAcrossReplicates], list[replicate_stats.ReplicatedComparison]]:
    """Per-arm scores across replicates and every arm against the reference (pure: files not touched).

    With ``replicates = 'auto'`` each comparison's statistics cover the replicates its sequential
    decision used; differences of replicates finished past its stop are listed apart (``after_stop``).
    """
    names = [(a.name, a.regularizer) for a in workflow.expand_ablations(spec).evaluate.arms
             if any(_has(rec, a.name) for rec in records)]
    across = [_across(records, name, reg) for name, reg in names]
    found = []
    if reference is None:
        return across, found
    for name, _ in names:
        if name == reference:
            continue
        both, a, b = _pairs(records, name, reference)
        if not both:
            continue
        after, decided = [], None
        if spec.compare.auto:
            decided, _, diffs = sequential_state(spec, records, reference, name, comparisons, True)
            usable = np.flatnonzero(np.isfinite(diffs))
            cut = int(usable[decided.replicates_used - 1]) + 1 if decided.replicates_used else len(both)
            after = [float(x) for x in diffs[cut:] if np.isfinite(x)]
            both, a, b = both[:cut], a[:cut], b[:cut]
        try:
            comparison = replicate_stats.compare(name, a, reference, b, gamma=spec.compare.gamma,
                                                 margin_points=spec.compare.margin,
                                                 indices=[rec.index for rec in both])
        except ValueError:  # no replicate where both arms have a score: nothing to compare
            continue
        if decided is not None:
            comparison = comparison.model_copy(update={
                "sequential": decided, "verdict": decided.decision, "rule": decided.rule, "after_stop": after})
        found.append(comparison)
    return across, found


def run(run: Run, out: Path, storage: str | None = None, progress: Progress = Progress(),
        command: str = "compare", comparisons: int | None = None) -> tuple[CompareResult, Path, Path]:
    """Run (or resume) the comparison's replicates; writes every checkpoint, ``out/compare.json`` and ``compare.png``.

    Fixed R: replicates F..F+R-1. ``replicates = 'auto'``: from F on, a look after the first
    ``min_replicates`` and then after every ``batch``; an arm whose comparison has decided is not
    trained again, and the run ends when every comparison has decided or ``max_replicates`` ran.
    ``comparisons``: the family over which alpha is split (default: this run's arms against the
    reference; ``compare --workloads`` passes every workload's).
    """
    started = datetime.now(UTC)
    spec = run.spec
    check(spec)
    for regularizer in to_tune(spec):
        run.plugin(regularizer)  # an unknown plugin is refused before any work
    run.check(["baseline", *(a.regularizer for a in spec.evaluate.arms)])
    settings = key(spec)
    expanded = workflow.expand_ablations(spec)
    reference = workflow.reference_arm(expanded)
    arms_mod.resolve(expanded.evaluate.arms, out, expanded,  # a bad arm is refused before any work
                     tuned={reg: (_placeholder(spec, reg), "") for reg in to_tune(spec)})
    workflow.apply_runtime(spec)
    family = comparisons or family_size(spec)
    storage = storage or spec.storage.url  # the argument, else the spec's [storage] url
    opened = open_storage(storage, spec.storage) if storage else None  # a bad URL is refused before any write
    out.mkdir(parents=True, exist_ok=True)
    opened = opened or open_storage(workflow.default_storage(out), spec.storage)
    total = sum(stages(spec, r) for r in indices(spec))
    finished: dict[int, ReplicateRecord] = {}
    reused: list[int] = []
    once: dict[str, TunedPick] = {}
    every = {a.name for a in expanded.evaluate.arms}

    def window(todo: list[int], arms: set[str] | None, note: str) -> None:
        nonlocal once
        # Workers sharing a storage first go through every replicate doing what work is free (so N
        # workers spread over the replicates instead of queueing on the first), then wait for the rest
        # in order. A single process never finds work held by another, so it takes one pass in order.
        for wait in ([False, True] if opened.shared else [True]):
            for r in todo:
                done = sum(stages(spec, i) for i in indices(spec) if i < r)
                if r in finished:
                    continue
                path = checkpoint_path(out, settings, r)
                record = load_checkpoint(path, settings, r)
                recorded = {a.name for a in record.arms} if record is not None else set()
                if record is not None and (arms or every) <= recorded:
                    reused.append(r)
                elif spec.compare.tune == "once" and r != spec.compare.first_replicate and not once:
                    record = None  # the picks of replicate F are not there yet
                else:
                    staged = Progress(
                        (lambda label, d, t: progress.on_stage(label + note, d, t)) if progress.on_stage else None,
                        progress.on_epoch)
                    record = run_replicate(run, settings, replicate(spec, r), out, opened, once, staged, done, total,
                                           wait, None if arms is None else arms | recorded)
                    if record is not None:
                        results.save(record, path)
                        run.datasets.forget(replicate_spec(spec, replicate(spec, r)).data)  # nothing trains on it again
                if record is None:
                    continue
                if spec.compare.tune == "once" and r == spec.compare.first_replicate:
                    once = {p.regularizer: p for p in record.tuning}
                finished[r] = record

    def ordered() -> list[ReplicateRecord]:
        return [finished[r] for r in sorted(finished)]

    if not spec.compare.auto:
        window(list(indices(spec)), None, "")
    else:
        todo, size = list(indices(spec)), spec.compare.min_replicates
        while todo:
            still = open_arms(spec, ordered(), reference, family)
            if not still:
                break
            # the reference and every open arm train; an arm they take hyperparameters from is tuned, not trained
            window(todo[:size], {reference, *still}, f" ({len(still)} of {len(every) - 1} comparisons open)")
            todo, size = todo[size:], spec.compare.batch
    records = ordered()
    if progress.on_stage:
        progress.on_stage("statistics", total, total)
    across, comparisons_found = summarise(spec, records, reference, family)
    budgets = tuning_budgets(spec, records)
    result = CompareResult(
        spec=spec, key=settings, derivation=derivation(run),
        covers=covers(spec, run.task.workload.resampled), replicates=records, arms=across,
        reference=reference, comparisons=comparisons_found, reused_replicates=reused,
        tuning_budgets=budgets, budget_note=budget_note(budgets),
        provenance=results.provenance(spec.train.device, started, command),
    )
    json_path, png_path = out / "compare.json", out / "compare.png"
    results.save(result, json_path)
    from sscbench.output import plot  # matplotlib is imported only when a figure is drawn

    plot.save_compare_figure(result, png_path)
    return result, json_path, png_path


def tuning_budgets(spec: RunSpec, records: list[ReplicateRecord]) -> list[ArmBudget]:
    """Each tuned plugin's budget, summed over the replicates it was tuned in (once, under ``--tune once``)."""
    out = []
    for regularizer in to_tune(spec):
        picks = {(p.tuned_in, p.study_name): p for rec in records for p in rec.tuning if p.regularizer == regularizer}
        budgets = [p.budget for p in picks.values() if p.budget is not None]
        if budgets:
            out.append(ArmBudget(regularizer=regularizer, pruner=spec.tune.pruner, budget=total_budget(budgets)))
    return out


#: Budgets within this share of each other count as equal.
EQUAL_BUDGET_TOLERANCE = 0.05


def budget_note(budgets: list[ArmBudget]) -> str:
    """One line: were the tuned arms compared at equal budget (model-epochs)? If not, by how much not."""
    if len(budgets) < 2:
        return ""
    epochs = {b.regularizer: b.budget.model_epochs for b in budgets}
    low, high = min(epochs.values()), max(epochs.values())
    listing = ", ".join(f"{name} {value:,}" for name, value in epochs.items())
    if high <= low * (1 + EQUAL_BUDGET_TOLERANCE):
        return f"arms tuned at equal budget: {listing} model-epochs"
    return (f"arms tuned at UNEQUAL budget: {listing} model-epochs ({high / max(low, 1):.2f}x); the pruner stopped "
            "more trials of one arm than of another")


def now() -> datetime:
    return datetime.now(UTC)


def save_workloads(names: list[str], done: list[CompareResult], out: Path, started: datetime,
                   command: str) -> tuple[WorkloadsCompareResult, Path, Path]:
    """The comparisons of ``compare --workloads``, side by side: ``out/compare-workloads.json`` and ``.png``."""
    result = WorkloadsCompareResult(workloads=names, results=done,
                                    provenance=results.provenance(done[0].spec.train.device, started, command))
    json_path, png_path = out / "compare-workloads.json", out / "compare-workloads.png"
    results.save(result, json_path)
    from sscbench.output import plot

    plot.save_workloads_figure(result, png_path)
    return result, json_path, png_path


def _placeholder(spec: RunSpec, regularizer: str) -> dict[str, float]:
    """Stand-in tuned values (the range's low ends and the plugin's defaults), to check arms before tuning."""
    plugin = registry.load(regularizer)
    return {"lr": spec.tune.lr.low, "weight_decay": spec.tune.weight_decay.low} | plugin.defaults()
