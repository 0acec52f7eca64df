"""Run specs: the typed, documented settings of every stage.

What it is: pydantic models (frozen, unknown keys forbidden, every field
described) whose defaults are PROTOCOL.md exactly, plus the TOML loader.
What it is not: the place where anything runs; stages receive these objects.

A TOML file overrides any field; command-line options override the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator, model_validator

from sscbench.redact import UNSAFE, mask, unsafe

PosInt = Annotated[int, Field(gt=0)]
#: Seeds NumPy's legacy seeding accepts (mnist1d generation, Optuna's TPE sampler).
NumpySeed = Annotated[int, Field(ge=0, le=2**32 - 1)]
#: Model seeds: torch generators and sscbench's int64 random streams take these.
ModelSeed = Annotated[int, Field(ge=0, le=2**63 - 1)]


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SearchRange(Spec):
    """One hyperparameter's search interval."""

    low: float = Field(description="Lower bound (inclusive).")
    high: float = Field(description="Upper bound (inclusive).")
    log: bool = Field(True, description="Sample uniformly in log space.")

    @model_validator(mode="after")
    def _check(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scaled range needs low > 0, got {self.low}")
        return self


class DataSpec(Spec):
    """mnist1d generation (``make_dataset``) and the validation split."""

    num_samples: PosInt = Field(10000, description="mnist1d num_samples (train + test).")
    seed: NumpySeed = Field(42, description="mnist1d generation seed (0 to 2**32 - 1).")
    final_seq_length: PosInt = Field(40, description="Length of each 1D signal.")
    train_split: float = Field(0.8, gt=0, lt=1, description="Share of samples in mnist1d's train split.")
    shuffle_seq: bool = Field(False, description="mnist1d shuffle_seq (permute positions).")
    validation_size: PosInt = Field(
        1000, description="The LAST this-many train samples form the validation set."
    )

    def mnist1d_args(self) -> dict[str, object]:
        return self.model_dump(exclude={"validation_size"})


class WorkloadSpec(Spec):
    """The task: a registered workload (data and model family) and its arguments."""

    name: str = Field("mnist1d-mlp", min_length=1, description="Registered workload (see `sscbench workloads`).")
    args: dict[str, Any] = Field(
        default_factory=dict, description="The workload's own arguments (its Args model); omitted ones take "
                                          "their defaults, and results record them all.")


class TrainSpec(Spec):
    """The shared trainer: AdamW, mini-batches, device."""

    batch_size: PosInt = Field(128, description="Mini-batch size; the last partial batch is kept.")
    beta1: float = Field(0.9, ge=0, lt=1, description="AdamW beta1.")
    beta2: float = Field(0.999, ge=0, lt=1, description="AdamW beta2.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="'cpu' or 'cuda[:N]'.")
    threads: PosInt | None = Field(None, description="torch intra-op threads (default: torch's).")
    workers: PosInt = Field(
        1, description="Sub-stacks trained at once, in threads with max(1, threads / workers) intra-op "
                       "threads each; results agree with 1 worker to float tolerance, not bit for bit."
    )
    cpu_kernels: Literal["native", "avx2"] = Field(
        "native", description="torch's CPU kernel level: 'native' (the best this CPU has) or 'avx2' "
                              "(ATEN_CPU_CAPABILITY=avx2), which gave the same results on an AVX-512 host "
                              "as on an AVX2-only one."
    )


class TuneSpec(Spec):
    """Optuna TPE tuning of one regularizer, trials trained as stacks."""

    trials: PosInt = Field(30, description="Completed trials per study.")
    epochs: PosInt = Field(15, description="Epochs per trial.")
    sampler_seed: NumpySeed = Field(0, description="TPE sampler seed (recorded; 0 to 2**32 - 1).")
    studies: PosInt = Field(1, description="Independent studies (sampler seeds sampler_seed + k).")
    model_seed: ModelSeed = Field(0, description="Model seed of every trial (init and batch order; 0 to 2**63 - 1).")
    round_size: PosInt = Field(
        10, description="Trials asked at once (TPE constant liar) and trained as one stack."
    )
    pruner: Literal["none", "median", "hyperband"] = Field(
        "none", description="Stop unpromising trials early: 'none' (every trial trains every epoch, the protocol), "
                            "'median' (Optuna's MedianPruner) or 'hyperband' (HyperbandPruner, min 1 epoch, "
                            "reduction factor 3). Trials report their best validation accuracy after each epoch.")
    lr: SearchRange = Field(SearchRange(low=1e-4, high=1e-2), description="AdamW learning rate range.")
    weight_decay: SearchRange = Field(
        SearchRange(low=1e-6, high=1e-1), description="AdamW weight decay range."
    )

    @model_validator(mode="after")
    def _check(self) -> TuneSpec:
        last = self.sampler_seed + self.studies - 1
        if last > 2**32 - 1:
            raise ValueError(f"sampler seeds {self.sampler_seed}..{last} go past 2**32 - 1; lower sampler_seed")
        return self


class ArmSpec(Spec):
    """One evaluated configuration: a regularizer and its hyperparameters."""

    name: str = Field(min_length=1, description="The arm's name in tables, plots and JSON.")
    regularizer: str = Field(min_length=1, description="Registered regularizer plugin name.")
    params: dict[str, float] | None = Field(
        None,
        description="Hyperparameters (lr, weight_decay and the plugin's own); "
        "omitted: read from the tune results of the regularizer.",
    )
    from_: str | None = Field(
        None, alias="from", description="Take another arm's hyperparameters (then apply override)."
    )
    override: dict[str, float] = Field(default_factory=dict, description="Values replacing params.")

    @model_validator(mode="after")
    def _check(self) -> ArmSpec:
        if self.from_ is not None and self.params is not None:
            raise ValueError(f"arm '{self.name}': give either 'params' or 'from', not both")
        if self.from_ == self.name:
            raise ValueError(f"arm '{self.name}' cannot take its hyperparameters from itself")
        return self


def _default_arms() -> list[ArmSpec]:
    return [ArmSpec(name="baseline", regularizer="baseline"), ArmSpec(name="ssc", regularizer="ssc")]


class EvaluateSpec(Spec):
    """Multi-seed evaluation of arms on the test set."""

    seeds: PosInt = Field(5, description="Seeds 0..seeds-1 per arm (paired across arms).")
    epochs: PosInt = Field(30, description="Epochs per seed.")
    arms: list[ArmSpec] = Field(default_factory=_default_arms, description="The arms to evaluate.")
    reference: str = Field("baseline", description="Arm every other arm is compared with (paired by seed).")
    ablations: bool = Field(
        False, description="Add for every regularized arm R the arm R-off: R's lr and weight decay, no regularizer."
    )

    @model_validator(mode="after")
    def _check(self) -> EvaluateSpec:
        if not self.arms:
            raise ValueError("at least one arm is needed")
        names = [a.name for a in self.arms]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"arm names must be unique; repeated: {', '.join(dupes)}")
        for arm in self.arms:
            if arm.from_ is not None and arm.from_ not in names:
                raise ValueError(f"arm '{arm.name}': from = '{arm.from_}' is not an arm ({', '.join(names)})")
        return self


class CompareSpec(Spec):
    """Replicated comparison: every source of variance re-drawn per replicate."""

    replicates: PosInt | Literal["auto"] = Field(
        10, description="Replicates R; each re-draws the data, the tuning run and the seeds. 'auto': add replicates "
                        "until every comparison is decided (better, worse or equivalent within the margin) or "
                        "max_replicates is reached."
    )
    min_replicates: int = Field(
        5, ge=2, le=10_000, description="With replicates = 'auto': the replicates of the first look."
    )
    max_replicates: PosInt = Field(40, le=10_000, description="With replicates = 'auto': the most replicates run.")
    margin: float = Field(
        0.5, gt=0, le=100, description="Equivalence margin in accuracy points: a difference inside ±margin is "
                                       "'equivalent' when the interval shows it."
    )
    batch: PosInt = Field(
        1, le=10_000, description="With replicates = 'auto': replicates started between looks (workers sharing a "
                                  "storage run a batch at once)."
    )
    first_replicate: int = Field(
        0, ge=0, le=2**32 - 1, description="First replicate index F: replicates F..F+R-1 run (0 is the protocol)."
    )
    tune: Literal["per-replicate", "once"] = Field(
        "per-replicate", description="'per-replicate': every arm tuned afresh in every replicate; 'once': tuned "
                                     "on replicate F only and its pick reused (cheaper, ignores tuning variance)."
    )
    gamma: float = Field(
        0.75, gt=0.5, le=1, description="P(A > B) a difference must reach (or 1 - gamma) to be called meaningful."
    )

    @model_validator(mode="after")
    def _bounds(self) -> CompareSpec:
        if self.max_replicates < self.min_replicates:
            raise ValueError(f"max_replicates ({self.max_replicates}) must be at least min_replicates "
                             f"({self.min_replicates})")
        return self

    @property
    def auto(self) -> bool:
        return self.replicates == "auto"

    @property
    def planned(self) -> int:
        """The replicates the run may take: R, or max_replicates with 'auto'."""
        return self.max_replicates if self.replicates == "auto" else self.replicates


class StorageSpec(Spec):
    """How workers share an Optuna storage (PostgreSQL); SQLite takes one process per study."""

    url: str | None = Field(
        None, repr=False,
        description="Optuna storage URL (default: sqlite:///OUT/optuna.db); --storage and SSCBENCH_STORAGE "
                    "override it. Leave the password out (PGPASSWORD or ~/.pgpass); any password is written "
                    "as *** wherever the spec is recorded.")

    heartbeat_interval: PosInt = Field(10, description="Seconds between a worker's heartbeats for its trials.")
    grace_period: PosInt = Field(
        60, description="Seconds without a heartbeat after which a trial counts as its worker's death and is "
                        "retried with the same parameters.")
    max_retry: int = Field(3, ge=0, description="Times one trial is retried after its worker died.")

    @field_serializer("url")
    def _masked(self, url: str | None) -> str | None:
        return None if url is None else mask(url)

    @field_validator("url")
    @classmethod
    def _maskable(cls, url: str | None) -> str | None:
        if url is not None and unsafe(url):  # the message never repeats the URL
            raise ValueError(UNSAFE)
        return url

    @model_validator(mode="after")
    def _check(self) -> StorageSpec:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"grace_period ({self.grace_period}) must exceed heartbeat_interval "
                             f"({self.heartbeat_interval})")
        return self


class RunSpec(Spec):
    """Everything a run needs; defaults reproduce PROTOCOL.md."""

    data: DataSpec = Field(default_factory=DataSpec, description="Data generation and split.")
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec, description="The task: data and model family.")
    train: TrainSpec = Field(default_factory=TrainSpec, description="Trainer and optimizer.")
    tune: TuneSpec = Field(default_factory=TuneSpec, description="Tuning stage.")
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec, description="Evaluation stage.")
    compare: CompareSpec = Field(default_factory=CompareSpec, description="Replicated comparison (compare).")
    storage: StorageSpec = Field(default_factory=StorageSpec, description="Workers sharing a storage.")


    @model_validator(mode="before")
    @classmethod
    def _legacy_model_section(cls, raw: Any) -> Any:
        """Specs and results written before workloads had ``[model] hidden``: the MLP's ``workload.args``."""
        if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
            return raw
        raw = dict(raw)
        model = dict(raw.pop("model"))
        if "hidden" in model:
            workload = dict(raw.get("workload") or {})
            workload["args"] = {"hidden": model.pop("hidden"), **(workload.get("args") or {})}
            raw["workload"] = workload
        if model:  # anything else in [model] is reported like any unknown key
            raw["model"] = model
        return raw


class SpecError(ValueError):
    """A spec file or override that cannot be used; the message names the field and file."""


def format_validation(err: ValidationError, source: str, prefix: tuple[str, ...] = ()) -> str:
    """One line naming the source, then one line per error naming its field (``prefix`` + its location)."""
    lines = [f"invalid run spec ({source}):"]
    for e in err.errors():
        # a key with control characters or line breaks is shown quoted, so each field stays on its line
        loc = ".".join(str(p) if str(p).isprintable() else repr(p) for p in (*prefix, *e["loc"])) or "(top level)"
        lines.append(f"  {loc}: {' '.join(e['msg'].split())}")
    return "\n".join(lines)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, Mapping) else v for k, v in values.items()}


def build_spec(path: Path | None = None, overrides: dict[str, Any] | None = None,
               beneath: Callable[[str], Mapping[str, Any]] | None = None) -> RunSpec:
    """The effective spec: defaults, then ``beneath(workload name)`` (the workload's own defaults),
    then the TOML file, then ``overrides`` (nested dict)."""
    source = str(path) if path is not None else "defaults"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SpecError(f"spec file not found: {path}") from None
        except IsADirectoryError:
            raise SpecError(f"spec file is a directory: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"malformed TOML in {path}: {exc}") from None
        except UnicodeDecodeError:
            raise SpecError(f"spec file is not UTF-8 text: {path}") from None
    if overrides:
        raw = _merge(raw, overrides)
        source += " + command-line options"
    if beneath is not None:
        workload = raw.get("workload")
        name = workload.get("name") if isinstance(workload, dict) else None
        raw = _merge(_plain(beneath(name if isinstance(name, str) else WorkloadSpec().name)), raw)
    try:
        return RunSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(format_validation(err, source)) from None
