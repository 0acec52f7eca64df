"""``sscbench study``: every regularizer against the reference on every workload, as one run.

What it is: the plan (which arms run on which workload, and the cells a plugin cannot run on), one
replicated comparison per workload (``stages.compare``, into ``OUT/WORKLOAD/``) with alpha split
over every cell of the study, and ``OUT/study.json``: the matrix of decisions, each cell's budget,
the study's total compute and every workload's comparison in full.

A study is resumable the way a comparison is: each workload's finished replicates are checkpoints,
a decided cell is not trained again, and running the same command again reuses all of it. Its
workers share one storage, exactly as ``compare``'s do.
What it is not: the statistics (``stats``), the report page (``output.html``) or printing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sscbench.contracts import registry
from sscbench.contracts.task import Run
from sscbench.output import results
from sscbench.output.results import CompareResult, StudyBudget, StudyCell, StudyResult, StudyTotal
from sscbench.spec import SpecError
from sscbench.stages import compare
from sscbench.stats import paired
from sscbench.workload import Shape

#: The distribution whose plugins and workloads a study runs by default: sscbench's own.
BUILT_IN = "sscbench"
PROTOCOL_WORKLOAD = "mnist1d-mlp"


def default_arms() -> list[str]:
    """Every built-in regularizer (the reference, baseline, first)."""
    names = [n for n, info in registry.discover().items() if info.distribution == BUILT_IN]
    return sorted(names, key=lambda n: (n != "baseline", n))


def default_workloads() -> list[str]:
    """Every built-in workload whose data can load here: the protocol's first, then by name."""
    found = [n for n, info in registry.WORKLOADS.discover().items() if info.distribution == BUILT_IN]
    return [n for n in sorted(found, key=lambda n: (n != PROTOCOL_WORKLOAD, n))
            if registry.load_workload(n).available() is None]


@dataclass(frozen=True)
class Plan:
    """What runs where: the rows (arms, the reference first), the columns, and the cells left out."""

    arms: list[str]
    workloads: list[str]
    skipped: dict[tuple[str, str], str] = field(default_factory=dict)  # (arm, workload) -> why not

    def arms_on(self, workload: str) -> list[str]:
        return [a for a in self.arms if (a, workload) not in self.skipped]


def plan(arms: dict[str, str], shapes: dict[str, Shape], reference: str) -> Plan:
    """Every (arm, workload) pair of the workloads' input ``shapes``, minus those whose plugin refuses
    the workload's inputs, with the reason. ``arms`` maps each arm to its regularizer (the reference's
    plugin is baseline's where the reference is not an arm). An unknown plugin is refused in one line."""
    plugins = {reference: "baseline"} | arms
    arms = [reference, *(a for a in arms if a != reference)]
    if len(arms) < 2:
        raise SpecError(f"a study compares arms with the reference '{reference}': name at least one other arm")
    if not shapes:
        raise SpecError("a study needs at least one workload")
    skipped = {}
    for name, shape in shapes.items():
        for arm in arms:
            if (reason := registry.load(plugins[arm]).accepts(shape)) is not None:
                if arm == reference:
                    raise SpecError(f"the reference '{reference}' cannot run on workload '{name}': {reason}")
                skipped[(arm, name)] = reason
    return Plan(arms, list(shapes), skipped)


def run(runs: dict[str, Run], the_plan: Plan, out: Path, command: str,
        each: Callable[[str, Run, Path, int], CompareResult]) -> tuple[StudyResult, Path]:
    """Every workload's comparison (``each(name, run, folder, comparisons)``, which runs or resumes it),
    then ``out/study.json``. Alpha is split over every cell of the study that runs."""
    started = compare.now()
    for one in runs.values():
        compare.check(one.spec)
    family = sum(compare.family_size(one.spec) for one in runs.values())
    done = {name: each(name, one, out / name, family) for name, one in runs.items()}
    result = assemble(the_plan, done, results.provenance(next(iter(runs.values())).spec.train.device, started,
                                                         command))
    path = out / "study.json"
    results.save(result, path)
    return result, path


def assemble(the_plan: Plan, done: dict[str, CompareResult], provenance: results.Provenance) -> StudyResult:
    """The study record from its workloads' comparisons (pure)."""
    reference = the_plan.arms[0]
    cells = [cell(the_plan, arm, name, done[name]) for name in the_plan.workloads for arm in the_plan.arms[1:]]
    first = next(iter(done.values())).spec
    c = first.compare
    budget = StudyBudget(
        pruner=first.tune.pruner, trials=first.tune.trials, tune_epochs=first.tune.epochs,
        seeds=first.evaluate.seeds, epochs=first.evaluate.epochs,
        replicates=c.replicates, min_replicates=c.min_replicates, max_replicates=c.max_replicates,
        margin=c.margin, alpha=paired.ALPHA,
        comparisons=sum(cl.status != "not applicable" for cl in cells))
    every = [rec for res in done.values() for rec in res.replicates]
    total = StudyTotal(
        replicates=len(every), model_epochs=sum(rec.model_epochs for rec in every),
        tune_seconds=sum(rec.tune_seconds for rec in every),
        evaluate_seconds=sum(rec.evaluate_seconds for rec in every))
    return StudyResult(reference=reference, arms=the_plan.arms[1:], workloads=the_plan.workloads, cells=cells,
                       budget=budget, total=total, results=[done[n] for n in the_plan.workloads],
                       provenance=provenance)


def cell(the_plan: Plan, arm: str, workload: str, result: CompareResult) -> StudyCell:
    """One (arm, workload) cell: its decision and budget, or why it did not run (pure)."""
    resampled = result.resampled
    if (arm, workload) in the_plan.skipped:
        return StudyCell(arm=arm, workload=workload, status="not applicable", reason=the_plan.skipped[(arm, workload)],
                         resampled=resampled)
    found = next((c for c in result.comparisons if c.arm == arm), None)
    regularizer = next((a.regularizer for a in result.spec.evaluate.arms if a.name == arm), arm)
    tuning = sum(b.budget.model_epochs for b in result.tuning_budgets if b.regularizer == regularizer)
    trained = [rec for rec in result.replicates if any(a.name == arm for a in rec.arms)]
    evaluation = sum(len(a.test_accuracy) for rec in trained for a in rec.arms if a.name == arm) \
        * result.spec.evaluate.epochs
    if found is None:
        return StudyCell(arm=arm, workload=workload, status="open", reason="no replicate has finished both arms",
                         resampled=resampled, tuning_model_epochs=tuning, evaluation_model_epochs=evaluation)
    seq = found.sequential
    if seq is not None:
        status = "decided" if seq.decision is not None else "open"
        low, high, n, alpha = seq.rci_low, seq.rci_high, seq.replicates_used, seq.alpha_per_comparison
        mean = seq.mean_diff if seq.mean_diff is not None else found.mean_diff
    else:
        status, low, high, n, alpha = "decided", found.ci_low, found.ci_high, found.replicates, found.alpha
        mean = found.mean_diff
    return StudyCell(
        arm=arm, workload=workload, status=status, decision=found.verdict if status == "decided" else None,
        replicates=n, mean_diff=mean, low=low, high=high, margin=found.margin, alpha_per_comparison=alpha,
        rule=found.rule, resampled=resampled, tuning_model_epochs=tuning, evaluation_model_epochs=evaluation)
