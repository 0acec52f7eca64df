"""The stages as the CLI runs them: spec in, results files out.

What it is: ``tune`` and ``evaluate`` wired end to end for a resolved run
(``sscbench.contracts.task.Run``): resolve the arms, train, summarise, write
the versioned JSON and the plot, with progress reported through callbacks.
What it is not: the terminal interface; nothing here prints.

Everything that can be refused (spec, plugin, arm hyperparameters, an unusable
device) is checked before training starts, so a refused run writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from sscbench.contracts import registry
from sscbench.contracts.task import Run
from sscbench.engine.host import force_kernels, keep_freed_memory
from sscbench.engine.trainer import resolve_device
from sscbench.output import results
from sscbench.output.results import EvaluateResult, TuneResult
from sscbench.spec import RunSpec
from sscbench.stages import arms as arms_mod
from sscbench.stages import evaluation, tuning, workqueue
from sscbench.stages.storage import open_storage


@dataclass(frozen=True)
class Progress:
    """Callbacks a front end may pass; all optional."""

    on_trial: Callable[[tuning.TrialDone], None] | None = None
    #: (study or arm group, epoch, share of the stack that finished it): shares of an epoch add up to 1.
    on_epoch: Callable[[str, int, float], None] | None = None


def apply_runtime(spec: RunSpec) -> None:
    """Check the device, pin the CPU kernel level, set the thread count and let large tensors reuse freed
    memory, before any work starts."""
    resolve_device(spec.train.device)
    force_kernels(spec.train.cpu_kernels)
    keep_freed_memory()
    if spec.train.threads is not None:
        torch.set_num_threads(spec.train.threads)


def expand_ablations(spec: RunSpec) -> RunSpec:
    """The spec with the ablation arms added when ``evaluate.ablations`` asks for them."""
    if not spec.evaluate.ablations:
        return spec
    arms = arms_mod.with_ablations(list(spec.evaluate.arms))
    return spec.model_copy(update={"evaluate": spec.evaluate.model_copy(update={"arms": arms})})


def reference_arm(spec: RunSpec) -> str | None:
    """The reference arm's name; None when the default 'baseline' is absent (no comparisons)."""
    names = [a.name for a in spec.evaluate.arms]
    ref = spec.evaluate.reference
    if ref in names:
        return ref
    if "reference" in spec.evaluate.model_fields_set:
        raise arms_mod.ArmError(f"reference arm '{ref}' is not among the arms ({', '.join(names)})")
    return None


def default_storage(out: Path) -> str:
    return f"sqlite:///{(out / 'optuna.db').resolve()}"


def tune(
    run: Run,
    regularizer: str,
    out: Path,
    storage: str | None = None,
    study_name: str | None = None,
    progress: Progress = Progress(),
    command: str = "tune",
) -> tuple[TuneResult, Path]:
    """Run or resume ``spec.tune.studies`` studies of one plugin; writes ``out/tune-PLUGIN.json``."""
    started = datetime.now(UTC)
    plugin = run.check([regularizer])[0]
    spec = run.spec
    apply_runtime(spec)
    run.dataset()  # loaded (and a data problem refused) before anything is written
    storage = storage or spec.storage.url  # the argument, else the spec's [storage] url
    opened = open_storage(storage, spec.storage) if storage else None  # a bad URL is refused before any write
    out.mkdir(parents=True, exist_ok=True)
    opened = opened or open_storage(default_storage(out), spec.storage)
    studies = []
    for k in range(spec.tune.studies):
        seed = spec.tune.sampler_seed + k
        name = study_name or tuning.default_study_name(run, plugin, seed)
        if study_name and spec.tune.studies > 1:
            name = f"{study_name}-{k}"
        on_epoch = (lambda e, share, n=name: progress.on_epoch(n, e, share)) if progress.on_epoch else None
        studies.append(tuning.run_study(run, plugin, opened, name, seed, progress.on_trial, on_epoch))
    best_study = max((s for s in studies if s.best), key=lambda s: s.best.value)
    result = TuneResult(
        regularizer=regularizer, spec=spec, search_space=tuning.search_space(spec, plugin),
        fixed_params=tuning.fixed_params(plugin), studies=studies, best=best_study.best,
        best_study=best_study.study_name, budget=results.total_budget([s.budget for s in studies if s.budget]),
        provenance=results.provenance(spec.train.device, started, command),
    )
    path = arms_mod.tune_path(out, regularizer)
    results.save(result, path)
    return result, path


def evaluate(
    run: Run, out: Path, progress: Progress = Progress(), command: str = "evaluate", storage: str | None = None,
) -> tuple[EvaluateResult, Path, Path]:
    """Evaluate every arm of the spec; writes ``out/evaluate.json`` and ``out/evaluate.png``.

    The work goes through the storage's evaluation study (one unit per regularizer), so
    other processes on the same storage share it and an interrupted run keeps its finished units.
    """
    started = datetime.now(UTC)
    run = run.with_spec(expand_ablations(run.spec))
    spec = run.spec
    known = set(registry.available())  # an unknown plugin is refused by arm resolution, naming the arm
    run.check([a.regularizer for a in spec.evaluate.arms if a.regularizer in known])
    resolved = arms_mod.resolve(spec.evaluate.arms, out, spec)
    reference = reference_arm(spec)
    apply_runtime(spec)
    storage = storage or spec.storage.url  # the argument, else the spec's [storage] url
    opened = open_storage(storage, spec.storage) if storage else None  # a bad URL is refused before any write
    run.dataset()  # loaded (and a data problem refused) before anything is written
    out.mkdir(parents=True, exist_ok=True)
    opened = opened or open_storage(default_storage(out), spec.storage)
    seeds = list(range(spec.evaluate.seeds))
    arm_results = workqueue.run_shared_evaluation(run, resolved, opened, seeds, progress.on_epoch)
    result = EvaluateResult(
        spec=spec, arms=arm_results, reference=reference,
        comparisons=evaluation.comparisons(arm_results, reference) if reference else [],
        provenance=results.provenance(spec.train.device, started, command),
    )
    json_path, png_path = out / "evaluate.json", out / "evaluate.png"
    results.save(result, json_path)
    from sscbench.output import plot  # matplotlib is imported only when a figure is drawn

    plot.save_figure(result, png_path)
    return result, json_path, png_path


def with_reference(result: EvaluateResult, reference: str) -> EvaluateResult:
    """The same results compared against another arm (no training; the stored per-seed values)."""
    names = [a.name for a in result.arms]
    if reference not in names:
        raise arms_mod.ArmError(f"reference arm '{reference}' is not among the arms ({', '.join(names)})")
    return result.model_copy(update={"reference": reference,
                                     "comparisons": evaluation.comparisons(result.arms, reference)})
