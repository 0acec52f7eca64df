"""Versioned results files: schema, provenance, atomic writes, strict loading.

What it is: the pydantic models of everything sscbench writes to JSON
(``tune-PLUGIN.json``, ``evaluate.json``, ``compare.json``, ``study.json`` and the
per-replicate checkpoints of a comparison), the provenance every file carries,
and the two functions that write (atomically) and read (refusing unknown
versions and malformed content) them.
What it is not: the computation of any number in them.
"""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from sscbench.engine.host import CpuInfo, cpu_info
from sscbench.files import write_atomic
from sscbench.redact import masked_json, scrub_text
from sscbench.spec import RunSpec, SearchRange
from sscbench.stats.paired import Comparison, Summary
from sscbench.stats.replicates import ReplicatedComparison

SCHEMA_VERSION = 4
#: Versions this sscbench reads. Version 2 added ``provenance.cpu``, ``evaluate.covers`` and the
#: compare kinds; a version 1 file reads with those absent. Version 3 replaced the spec's
#: ``[model] hidden`` with ``[workload]`` (name and args); older files read as mnist1d-mlp with
#: their hidden widths. Version 4 added the equivalence margin, the verdict's rule, the sequential
#: record of ``compare --replicates auto`` and the arms a replicate left untrained; older files read
#: with those absent, and their verdict "no detectable difference" is kept as written.
READABLE_VERSIONS = (1, 2, 3, 4)

#: How ``covers`` begins where a comparison's replicates are resamples of a fixed archive.
COVERS_RESAMPLE = "the data resample"
COVERS_SEEDS = ("model seeds only (initialisation and batch order); the data draw and the tuning run are "
                "fixed: `sscbench compare` re-draws both")


class Record(BaseModel):
    """A results record. Serialising one masks any URL password in any string in it (``redact.mask``),
    so no file sscbench writes carries one, whichever field a URL reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_serializer(mode="wrap")
    def _masked(self, handler: SerializerFunctionWrapHandler) -> Any:
        return masked_json(handler(self))


class Provenance(Record):
    """Where and how a file was produced."""

    sscbench: str
    torch: str
    optuna: str
    python: str
    platform: str
    git_revision: str | None
    device: str
    threads: int
    command: str
    started: str
    finished: str
    wall_seconds: float
    cpu: CpuInfo | None = Field(None, description="The CPU that computed it and torch's kernel level.")


class TrialRecord(Record):
    number: int = Field(description="Optuna trial number within its study.")
    state: str = Field(description="COMPLETE, PRUNED, FAIL, ...")
    params: dict[str, float] = Field(description="Sampled and fixed hyperparameters.")
    value: float | None = Field(description="Best validation accuracy over the epochs the trial trained "
                                            "(a PRUNED trial's up to where it stopped).")
    duration_s: float | None = Field(description="Wall time of the round (stack) that trained it.")
    epochs: int | None = Field(None, description="Epochs it trained (fewer than tune.epochs when pruned).")


class Budget(Record):
    """What tuning cost: compute counted as model-epochs, and the wall time of its rounds."""

    model_epochs: int = Field(description="Epochs trained, summed over trials (one model for one epoch = 1).")
    train_seconds: float = Field(description="Wall time of the rounds (stacks) that trained the trials, summed.")
    complete: int = Field(description="COMPLETE trials.")
    pruned: int = Field(0, description="PRUNED trials (stopped early by the pruner).")


def total_budget(budgets: list[Budget]) -> Budget:
    """Budgets added up."""
    return Budget(model_epochs=sum(b.model_epochs for b in budgets),
                  train_seconds=sum(b.train_seconds for b in budgets),
                  complete=sum(b.complete for b in budgets), pruned=sum(b.pruned for b in budgets))


class StudyRecord(Record):
    study_name: str
    storage: str
    sampler_seed: int
    trials: list[TrialRecord]
    best: TrialRecord | None
    budget: Budget | None = Field(None, description="Model-epochs and training wall time of the study's trials.")


class TuneResult(Record):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["tune"] = "tune"
    regularizer: str
    spec: RunSpec
    search_space: dict[str, SearchRange]
    fixed_params: dict[str, float] = Field(description="Plugin hyperparameters held at their defaults.")
    studies: list[StudyRecord]
    best: TrialRecord = Field(description="The best completed trial over all studies.")
    best_study: str
    budget: Budget | None = Field(None, description="The studies' budgets added up.")
    provenance: Provenance


class Curves(Record):
    """Per seed (outer list) and epoch (inner list); null once a seed has diverged."""

    train_loss: list[list[float | None]]
    reg_term: list[list[float | None]]
    test_accuracy: list[list[float | None]]


class Diagnostics(Record):
    """Mechanism diagnostics of one arm, means over its non-diverged seeds."""

    reg_share: list[float | None] = Field(description="Per epoch: regularizer term / total training loss.")
    grad_norm_ratio: list[float | None] = Field(
        description="Per epoch: ||grad of the term|| / ||grad of the cross-entropy|| on a fixed probe batch.")
    spectral_consistency: float | None = Field(
        description="Unweighted SSC of the test set's saliency maps, grouped by class (lower = more consistent).")
    spectral_consistency_per_seed: list[float | None]
    spectrum_by_class: list[list[float]] = Field(description="[class][frequency]: mean normalised saliency spectrum.")
    shifts: list[int] = Field(description="Circular shifts k of the test inputs, in samples.")
    shift_accuracy: list[float | None] = Field(description="Test accuracy per shift.")
    shift_accuracy_per_seed: list[list[float | None]]


class StudyConfig(Record):
    """The best configuration of one tuning study, evaluated over the same seeds."""

    study: str
    params: dict[str, float]
    test_accuracy: list[float | None]
    mean: float | None


class TuningSpread(Record):
    """How much the luck of one tuning run matters: test accuracy across the K studies' picks."""

    configs: list[StudyConfig]
    std_ddof1: float | None
    min: float | None
    max: float | None


class ArmResult(Record):
    name: str
    regularizer: str
    params: dict[str, float]
    params_source: str = Field(description="Where the hyperparameters came from.")
    defaults_used: list[str] = Field(description="Plugin hyperparameters that took their declared default.")
    seeds: list[int]
    test_accuracy: list[float | None] = Field(description="Final-epoch test accuracy per seed.")
    diverged: list[int] = Field(description="Seeds whose training diverged.")
    mean: float | None
    std: float | None = Field(description="Standard deviation over seeds, ddof=0 (as the seed reported).")
    std_ddof1: float | None = Field(description="Sample standard deviation over seeds, ddof=1.")
    curves: Curves
    summary: Summary | None = Field(description="Mean, std, median and bootstrap CI over finite seeds.")
    diagnostics: Diagnostics
    tuning_spread: TuningSpread | None = Field(
        description="Present when the hyperparameters came from more than one tuning study.")


class EvaluateResult(Record):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["evaluate"] = "evaluate"
    spec: RunSpec
    arms: list[ArmResult]
    reference: str | None = Field(description="The arm every other arm is compared with.")
    comparisons: list[Comparison] = Field(description="Paired statistics of every arm against the reference.")
    covers: str = Field(COVERS_SEEDS, description="The sources of variance the verdicts account for.")
    provenance: Provenance


class TunedPick(Record):
    """One arm's tuning in one replicate: the study and its best trial."""

    regularizer: str
    tuned_in: int = Field(description="Replicate whose data and sampler seed the study used.")
    study_name: str
    storage: str
    sampler_seed: int
    data_seed: int
    model_seed: int
    trials_complete: int
    best_trial: int
    best_value: float = Field(description="Best validation accuracy of the study.")
    params: dict[str, float]
    wall_seconds: float = Field(
        description="Seconds spent tuning in this run (near 0 where the storage already held the finished study).")
    budget: Budget | None = Field(None, description="The study's model-epochs and training wall time.")


class ReplicateArm(Record):
    """One arm in one replicate: its hyperparameters and per-seed test accuracy."""

    name: str
    regularizer: str
    params: dict[str, float]
    params_source: str
    test_accuracy: list[float | None] = Field(description="Final-epoch test accuracy per model seed.")
    diverged: list[int]
    score: float | None = Field(description="Mean test accuracy over the seeds that did not diverge.")
    spectral_consistency: float | None
    reg_share: float | None = Field(description="Regularizer term / training loss in the last epoch.")


class ReplicateRecord(Record):
    """One complete protocol run of a comparison, with everything derived from its index."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["replicate"] = "replicate"
    key: str = Field(description="Hash of the settings that decide a replicate's results.")
    index: int
    data_seed: int
    sampler_seed: int
    tune_model_seed: int
    model_seeds: list[int]
    tuning: list[TunedPick]
    arms: list[ReplicateArm]
    not_trained: list[str] = Field(default_factory=list, description="Arms left out of this replicate because "
                                   "every comparison needing them had decided (compare --replicates auto).")
    tune_seconds: float
    evaluate_seconds: float
    model_epochs: int = Field(description="Epochs trained in this replicate, summed over models (tuning included).")
    cpu: CpuInfo


class ArmAcrossReplicates(Record):
    name: str
    regularizer: str
    scores: list[float | None] = Field(description="Score per replicate (mean test accuracy over its seeds).")
    mean: float | None
    std_ddof1: float | None
    min: float | None
    max: float | None


class ArmBudget(Record):
    """One plugin's tuning budget across a comparison's replicates."""

    regularizer: str
    pruner: str
    budget: Budget


class CompareResult(Record):
    schema_version: int = SCHEMA_VERSION
    kind: Literal["compare"] = "compare"
    spec: RunSpec
    key: str
    derivation: dict[str, str] = Field(description="How each replicate's randomness follows from its index r.")
    covers: str = Field(description="The sources of variance the verdicts account for.")
    replicates: list[ReplicateRecord]
    arms: list[ArmAcrossReplicates]
    reference: str | None
    comparisons: list[ReplicatedComparison]
    reused_replicates: list[int] = Field(description="Replicates read from checkpoints instead of computed.")
    tuning_budgets: list[ArmBudget] = Field(default_factory=list, description="Each tuned plugin's budget, summed "
                                                                               "over the replicates it was tuned in.")
    budget_note: str = Field("", description="Whether the arms were tuned at equal budget, and by how much not.")
    provenance: Provenance

    @property
    def resampled(self) -> bool:
        """Whether the replicates are resamples of a fixed archive (not new draws of the data)."""
        return self.covers.startswith(COVERS_RESAMPLE)


class WorkloadsCompareResult(Record):
    """``compare --workloads``: one replicated comparison per workload, same arms and settings."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["compare-workloads"] = "compare-workloads"
    workloads: list[str] = Field(description="The workloads, in the order asked for.")
    results: list[CompareResult] = Field(description="Each workload's comparison (also in OUT/WORKLOAD/compare.json).")
    provenance: Provenance


class StudyCell(Record):
    """One (arm, workload) cell of a study: its decision against the reference, or why it has none."""

    arm: str
    workload: str
    status: Literal["decided", "open", "not applicable"] = Field(
        description="decided; open (the run stopped before the rule decided); not applicable (the plugin refuses "
                    "the workload's inputs, see reason).")
    reason: str = ""
    decision: str | None = Field(None, description="better, worse, equivalent or inconclusive (when decided).")
    replicates: int | None = Field(None, description="Replicates the decision used (n).")
    mean_diff: float | None = Field(None, description="Mean paired difference of scores, arm - reference "
                                                      "(accuracy, a fraction: 0.01 is one point).")
    low: float | None = Field(None, description="The deciding interval's bounds (the repeated CI with 'auto').")
    high: float | None = None
    margin: float | None = Field(None, description="Equivalence margin, in the unit of mean_diff.")
    alpha_per_comparison: float | None = None
    rule: str | None = None
    resampled: bool = Field(False, description="Replicates are resamples of a fixed archive (not new draws).")
    tuning_model_epochs: int = Field(0, description="The arm's tuning budget over the replicates it was tuned in.")
    evaluation_model_epochs: int = Field(0, description="The arm's evaluation epochs over its seeds and replicates.")


class StudyBudget(Record):
    """The settings that decide what a study costs, the same for every cell."""

    pruner: str
    trials: int
    tune_epochs: int
    seeds: int
    epochs: int
    replicates: int | str
    min_replicates: int
    max_replicates: int
    margin: float = Field(description="Equivalence margin in accuracy points.")
    alpha: float = Field(description="The study's error rate, split over its comparisons (Bonferroni).")
    comparisons: int


class StudyTotal(Record):
    """What the whole study computed, over every workload's replicates."""

    replicates: int
    model_epochs: int = Field(description="Epochs trained, summed over every model (tuning and evaluation).")
    tune_seconds: float
    evaluate_seconds: float


class StudyResult(Record):
    """``sscbench study``: every arm against the reference on every workload."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["study"] = "study"
    reference: str
    arms: list[str] = Field(description="The rows: every arm but the reference.")
    workloads: list[str] = Field(description="The columns.")
    cells: list[StudyCell] = Field(description="One per (workload, arm), workload by workload.")
    budget: StudyBudget
    total: StudyTotal
    results: list[CompareResult] = Field(description="Each workload's comparison (also in OUT/WORKLOAD/compare.json).")
    provenance: Provenance


class ResultsError(ValueError):
    """A results file that is missing, of an unknown version, or not of the schema."""


R = TypeVar("R", TuneResult, EvaluateResult, CompareResult, ReplicateRecord, WorkloadsCompareResult, StudyResult)


def finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def git_revision(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=cwd or Path.cwd(), timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(device: str, started: datetime, command: str) -> Provenance:
    import optuna

    from sscbench import __version__

    finished = datetime.now(UTC)
    return Provenance(
        sscbench=__version__, torch=torch.__version__, optuna=optuna.__version__,
        python=sys.version.split()[0], platform=platform.platform(), git_revision=git_revision(),
        device=device, threads=torch.get_num_threads(), command=command,
        started=started.isoformat(), finished=finished.isoformat(),
        wall_seconds=(finished - started).total_seconds(), cpu=cpu_info(),
    )


def scrubbed(path: Path) -> str | None:
    """The text ``path`` should hold with every URL password masked, or None where it holds none.

    For files written before sscbench masked passwords (``sscbench scrub``); a problem reading it is a
    ``ResultsError`` naming the file.
    """
    try:
        return scrub_text(Path(path).read_text())
    except FileNotFoundError:
        raise ResultsError(f"results file not found: {path}") from None
    except IsADirectoryError:
        raise ResultsError(f"{path} is a folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not a JSON file: {exc}") from None


def save(result: Record, path: Path) -> None:
    write_atomic(path, result.model_dump_json(indent=2, by_alias=True) + "\n")


def load(path: Path, kind: type[R]) -> R:
    """Read a results file of the given kind; any problem is a ``ResultsError`` naming the file."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ResultsError(f"results file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise ResultsError(f"{path} is not an sscbench results file (no schema_version)")
    if type(raw["schema_version"]) is not int or raw["schema_version"] not in READABLE_VERSIONS:
        raise ResultsError(
            f"{path} has schema_version {raw['schema_version']!r}; this sscbench reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    expected = kind.model_fields["kind"].default
    if raw.get("kind") != expected:
        raise ResultsError(f"{path} holds '{raw.get('kind')}' results, expected '{expected}'")
    try:
        return kind.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()[:5])
        raise ResultsError(f"{path} does not match the {expected} results schema: {problems}") from None
