"""The ``sscbench`` command line: thin typer wrappers around ``sscbench.workflow``.

What it is: option parsing, spec assembly (defaults < --spec file < options),
progress bars and rich tables. Every refusal is one clear line on stderr and
exit code 2, before anything is trained or written.
What it is not: where anything is computed.
"""

from __future__ import annotations

import functools
import inspect
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import SQLAlchemyError

from sscbench import redact
from sscbench.contracts import registry, task
from sscbench.contracts.registry import PluginError
from sscbench.contracts.task import Run
from sscbench.data import DataCacheError, DataError
from sscbench.engine.host import KernelError
from sscbench.engine.trainer import DeviceError
from sscbench.output import render, results
from sscbench.output.export import ExportError
from sscbench.output.results import CompareResult, EvaluateResult, ResultsError, TuneResult
from sscbench.spec import CompareSpec, EvaluateSpec, RunSpec, SpecError, TrainSpec, TuneSpec, build_spec
from sscbench.stages import compare, workflow
from sscbench.stages.arms import ArmError
from sscbench.stages.storage import StorageError
from sscbench.stages.tuning import TrialDone, TuningError

app = typer.Typer(
    help="sscbench: tune and evaluate regularizer plugins on workloads (mnist1d by default), with versioned "
         "results.\n\n"
    "Examples:\n\n"
    "  sscbench plugins      sscbench workloads\n\n"
    "  sscbench tune ssc --trials 30\n\n"
    "  sscbench evaluate --seeds 5\n\n"
    "  sscbench reproduce        (the whole seed protocol)\n\n"
    "  sscbench compare --replicates 10   (replicated: data, tuning and seeds re-drawn)\n\n"
    "  sscbench report           (re-render tables and plot from results/)\n\n"
    "  sscbench check-plugin NAME  (the plugin contract checks)",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True, soft_wrap=True)

REFUSALS = (SpecError, ExportError, PluginError, ArmError, ResultsError, TuningError, DeviceError, KernelError,
            StorageError, DataCacheError, DataError)


def _doc(model: type[BaseModel], field: str) -> str:
    """An option's help from the spec field it sets: its description and default."""
    info = model.model_fields[field]
    default = info.get_default(call_default_factory=True)
    return info.description if default is None else f"{info.description} (default: {default})"


SpecOpt = Annotated[Path | None, typer.Option("--spec", help="TOML run spec; options override it.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for results files.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", help=_doc(TrainSpec, "device"))]
ArmsOpt = Annotated[str | None, typer.Option(help="Comma-separated arms or plugin names (default: baseline,ssc).")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help=_doc(TrainSpec, "threads"))]
WorkersOpt = Annotated[int | None, typer.Option("--workers", help=_doc(TrainSpec, "workers"))]
KernelsOpt = Annotated[str | None, typer.Option("--cpu-kernels", help=_doc(TrainSpec, "cpu_kernels"))]
SeedsOpt = Annotated[int | None, typer.Option(help=_doc(EvaluateSpec, "seeds"))]
EpochsOpt = Annotated[int | None, typer.Option(help=_doc(EvaluateSpec, "epochs"))]
ReferenceOpt = Annotated[str | None, typer.Option(help=_doc(EvaluateSpec, "reference"))]
AblationsOpt = Annotated[bool | None, typer.Option("--ablations/--no-ablations", help=_doc(EvaluateSpec, "ablations"))]
TrialsOpt = Annotated[int | None, typer.Option(help=_doc(TuneSpec, "trials"))]
PrunerOpt = Annotated[str | None, typer.Option("--pruner", help=_doc(TuneSpec, "pruner"))]
TuneEpochsOpt = Annotated[int | None, typer.Option(help=_doc(TuneSpec, "epochs"))]
StudiesOpt = Annotated[int | None, typer.Option(help=_doc(TuneSpec, "studies"))]
WorkloadOpt = Annotated[str | None, typer.Option(
    "--workload", help="Workload: the task and model family (see `sscbench workloads`; default: mnist1d-mlp).")]
STORAGE_ENV = "SSCBENCH_STORAGE"
StorageOpt = Annotated[str | None, typer.Option(
    envvar=STORAGE_ENV, show_envvar=True,
    help="Optuna storage URL (default: [storage] url of --spec, else sqlite:///OUT/optuna.db). Leave the password "
         "out: psycopg reads it from PGPASSWORD or ~/.pgpass; any password is shown and recorded as ***.")]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that cleanup runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def refusals() -> Iterator[None]:
    """Known refusals become a one-line message and exit code 2; a failing file system (unwritable
    folder, full disk) one line and 1; Ctrl-C and SIGTERM one line and 130 / 143.

    An interrupted command keeps what it finished (completed trials, evaluated units, replicates),
    and running it again resumes.
    """
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        yield
    except REFUSALS as exc:
        errors.print(f"[bold red]error:[/bold red] {escape(redact.mask(str(exc)))}", highlight=False)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:  # the storage failed mid-run: locked, gone, full
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        errors.print(f"[bold red]storage error:[/bold red] {escape(redact.mask(first))} (finished work is kept in the "
                     "storage; run the same command again to resume)", highlight=False)
        raise typer.Exit(1) from None
    except OSError as exc:  # an unwritable folder, a full disk, a vanished file: the system said no
        where = f": {exc.filename}" if exc.filename else ""
        errors.print(f"[bold red]error:[/bold red] {escape(redact.mask((exc.strerror or str(exc)) + where))} "
                     "(results written before are intact)", highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt as exc:
        name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
        errors.print(f"[bold red]interrupted[/bold red] ({name}): finished work is kept; "
                     "run the same command again to resume", highlight=False)
        raise typer.Exit(code) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _overrides(**sections: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in values.items() if v is not None}
            for name, values in sections.items() if any(v is not None for v in values.values())}


def _spec(path: Path | None, **sections: dict[str, Any]) -> RunSpec:
    """Defaults < the workload's own defaults < the spec file < options (``task.resolve_run`` then fills in
    the workload's arguments, once)."""
    return build_spec(path, _overrides(**sections), beneath=task.spec_defaults)


def _command_line() -> str:
    return redact.command_line(["sscbench", *sys.argv[1:]])


class _LazyBar:
    """A rich progress bar that appears with the first update, so a refusal prints no bar."""

    def __init__(self, description: str, total: int) -> None:
        self.description, self.total = description, total
        self.bar: Progress | None = None

    def update(self, **fields: Any) -> None:
        if self.bar is None:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)
        self.bar.update(self.task, **fields)

    def __enter__(self) -> _LazyBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command("plugins")
def plugins_cmd() -> None:
    """List the discovered regularizer plugins, their hyperparameters, search ranges and the inputs they need."""
    with refusals():
        console.print(render.plugins_table())


@app.command("workloads")
def workloads_cmd() -> None:
    """List the discovered workloads (task and model family), their arguments and sample shapes.

    Example: sscbench workloads   |   sscbench reproduce --workload mnist1d-cnn
    """
    with refusals():
        console.print(render.workloads_table())


@dataclass(frozen=True)
class RunOptions:
    """The options tune, evaluate, reproduce and compare share (declared once, in ``SHARED``)."""

    workload: str | None
    storage: str | None
    spec_file: Path | None
    out: Path
    device: str | None
    threads: int | None
    workers: int | None
    cpu_kernels: str | None

    def spec(self, workload: str | None = None, **sections: dict[str, Any]) -> RunSpec:
        """The effective spec: defaults < the workload's < the --spec file < these options and ``sections``."""
        return _spec(self.spec_file, **sections, workload={"name": workload or self.workload},
                     train={"device": self.device, "threads": self.threads, "workers": self.workers,
                            "cpu_kernels": self.cpu_kernels},
                     storage={"url": self.storage})


#: The shared options, in the order ``--help`` lists them after a command's own.
SHARED: dict[str, tuple[Any, Any]] = {
    "workload": (WorkloadOpt, None), "storage": (StorageOpt, None), "spec_file": (SpecOpt, None),
    "out": (OutOpt, Path("results")), "device": (DeviceOpt, None), "threads": (ThreadsOpt, None),
    "workers": (WorkersOpt, None), "cpu_kernels": (KernelsOpt, None),
}


def run_options(command: Callable[..., None]) -> Callable[..., None]:
    """A command that takes the shared options: typer sees them in its signature, after the command's
    own, and the command receives them as one ``opts: RunOptions``."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "opts"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
              for name, (annotation, default) in SHARED.items()]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        opts = RunOptions(**{name: kwargs.pop(name) for name in SHARED})
        command(**kwargs, opts=opts)

    wrapper.__signature__ = inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind ==
                                               inspect.Parameter.POSITIONAL_OR_KEYWORD else p for p in own] + shared)
    wrapper.__annotations__ = {p.name: p.annotation for p in (*own, *shared)}
    return wrapper


def _tune_one(run: Run, plugin: str, out: Path, study_name: str | None) -> TuneResult:
    spec = run.spec
    total = spec.tune.trials * spec.tune.studies
    with _LazyBar(f"tune {plugin}", total) as bar:
        state = {"studies_done": 0, "best": "-"}

        def on_trial(done: TrialDone) -> None:
            state["best"] = "-" if done.best_value is None else f"{100 * done.best_value:.2f}%"
            finished = done.completed == done.total
            state["studies_done"] += finished
            bar.update(completed=min(total, state["studies_done"] * spec.tune.trials
                                     + (0 if finished else done.completed)),
                       description=f"tune {plugin} (best validation {state['best']})")

        def on_epoch(study: str, epoch: int, share: float) -> None:
            bar.update(description=f"tune {plugin}: {study} epoch {epoch + 1}/{spec.tune.epochs} "
                                   f"(best validation {state['best']})")

        result, path = workflow.tune(run, plugin, out, study_name=study_name, command=_command_line(),
                                     progress=workflow.Progress(on_trial=on_trial, on_epoch=on_epoch))
    console.print(render.tune_table(result))
    console.print(f"wrote {path}")
    return result


@app.command("tune")
@run_options
def tune_cmd(
    plugin: Annotated[str, typer.Argument(help="Regularizer plugin to tune (see `sscbench plugins`).")],
    trials: TrialsOpt = None,
    epochs: Annotated[int | None, typer.Option(help=_doc(TuneSpec, "epochs"))] = None,
    seed: Annotated[int | None, typer.Option("--seed", help=_doc(TuneSpec, "sampler_seed"))] = None,
    studies: StudiesOpt = None,
    round_size: Annotated[int | None, typer.Option(help=_doc(TuneSpec, "round_size"))] = None,
    pruner: PrunerOpt = None,
    study_name: Annotated[str | None, typer.Option(help="Study name (default: PLUGIN-sSEED-HASH).")] = None,
    *, opts: RunOptions,
) -> None:
    """Tune one plugin with Optuna TPE; resumes an existing study up to --trials completed trials.

    Example: sscbench tune ssc --trials 30 --epochs 15 --seed 0
    """
    with refusals():
        spec = opts.spec(tune={"trials": trials, "epochs": epochs, "sampler_seed": seed, "studies": studies,
                               "round_size": round_size, "pruner": pruner})
        _tune_one(task.resolve_run(spec, [plugin]), plugin, opts.out, study_name)


def _arms_override(spec_file: Path | None, arms: str | None) -> list[dict[str, Any]] | None:
    if arms is None:
        return None
    names = [a.strip() for a in arms.split(",") if a.strip()]
    if not names:
        raise SpecError("--arms needs at least one arm name")
    existing = {a.name: a for a in build_spec(spec_file).evaluate.arms}
    return [existing[n].model_dump(by_alias=True, exclude_none=True) if n in existing
            else {"name": n, "regularizer": n} for n in names]


def _evaluate(run: Run, out: Path) -> EvaluateResult:
    spec = run.spec
    groups = len({a.regularizer for a in workflow.expand_ablations(spec).evaluate.arms})
    with _LazyBar("evaluate", groups * spec.evaluate.epochs) as bar:
        done = [0.0]  # group-epochs; sub-stacks add their shares, rounded so that float sums land on integers

        def on_epoch(label: str, epoch: int, share: float) -> None:
            done[0] += share
            bar.update(completed=round(done[0], 6),
                       description=f"evaluate {label} × {spec.evaluate.seeds} seeds, "
                                   f"epoch {epoch + 1}/{spec.evaluate.epochs}")

        result, json_path, png_path = workflow.evaluate(run, out, workflow.Progress(on_epoch=on_epoch),
                                                        _command_line())
    _print_evaluation(result)
    console.print(f"wrote {json_path} and {png_path}")
    return result


def _print_evaluation(result: EvaluateResult) -> None:
    console.print(render.evaluate_table(result))
    if result.comparisons:
        console.print(render.comparison_table(result))
    console.print(render.diagnostics_table(result))


@app.command("evaluate")
@run_options
def evaluate_cmd(
    arms: ArmsOpt = None,
    seeds: SeedsOpt = None,
    epochs: EpochsOpt = None,
    reference: ReferenceOpt = None,
    ablations: AblationsOpt = None,
    *, opts: RunOptions,
) -> None:
    """Train the arms over seeds with their tuned (or given) hyperparameters; test accuracy per seed.

    Example: sscbench evaluate --seeds 5 --arms baseline,ssc
    """
    with refusals():
        spec = opts.spec(evaluate={"seeds": seeds, "epochs": epochs, "reference": reference, "ablations": ablations,
                                   "arms": _arms_override(opts.spec_file, arms)})
        _evaluate(task.resolve_run(spec), opts.out)


@app.command("reproduce")
@run_options
def reproduce_cmd(
    arms: ArmsOpt = None,
    trials: TrialsOpt = None,
    tune_epochs: TuneEpochsOpt = None,
    seeds: SeedsOpt = None,
    epochs: EpochsOpt = None,
    ablations: AblationsOpt = None,
    studies: StudiesOpt = None,
    pruner: PrunerOpt = None,
    *, opts: RunOptions,
) -> None:
    """The whole seed protocol: tune every arm's plugin (baseline and ssc by default), then evaluate.

    Example: sscbench reproduce   |   sscbench reproduce --arms baseline,ssc,gradnorm --ablations
    """
    with refusals():
        spec = opts.spec(tune={"trials": trials, "epochs": tune_epochs, "studies": studies, "pruner": pruner},
                         evaluate={"seeds": seeds, "epochs": epochs, "ablations": ablations,
                                   "arms": _arms_override(opts.spec_file, arms)})
        workflow.apply_runtime(spec)
        to_tune = list(dict.fromkeys(a.regularizer for a in spec.evaluate.arms if a.params is None
                                     and a.from_ is None))  # in arm order, each once
        for plugin in to_tune:
            registry.load(plugin)  # refuse an unknown plugin before any tuning starts
        # One resolved run for the whole protocol: the dataset is loaded once for every stage.
        run = task.resolve_run(spec, [a.regularizer for a in workflow.expand_ablations(spec).evaluate.arms])
        for plugin in to_tune:
            _tune_one(run, plugin, opts.out, None)
        _evaluate(run, opts.out)


# The options compare and study share (the sequential rule's bounds and a replicate's seeds).
MinReplicatesOpt = Annotated[int | None, typer.Option(help=_doc(CompareSpec, "min_replicates"))]
MaxReplicatesOpt = Annotated[int | None, typer.Option(help=_doc(CompareSpec, "max_replicates"))]
MarginOpt = Annotated[float | None, typer.Option(help=_doc(CompareSpec, "margin"))]
BatchOpt = Annotated[int | None, typer.Option(help=_doc(CompareSpec, "batch"))]
ReplicateSeedsOpt = Annotated[int | None, typer.Option(help=_doc(EvaluateSpec, "seeds") + " Per replicate.")]


def _replicates(value: str | None) -> int | str | None:
    """``--replicates``: a positive count or 'auto'."""
    if value is None or value.strip().lower() == "auto":
        return None if value is None else "auto"
    try:
        return int(value)
    except ValueError:
        raise SpecError(f"--replicates must be a positive whole number or 'auto', got '{value}'") from None


def _compare(run: Run, out: Path, comparisons: int | None = None, show: bool = True) -> CompareResult:
    with _LazyBar("compare" if show else f"study: {run.task.name}", 1) as bar:
        state = {"stage": ""}

        def on_stage(label: str, done: int, total: int) -> None:
            state["stage"] = label
            bar.update(completed=done, total=total, description=f"compare: {label}")

        def on_epoch(label: str, epoch: int, share: float) -> None:
            bar.update(description=f"compare: {state['stage']}, epoch {epoch + 1}")

        result, json_path, png_path = compare.run(run, out, progress=compare.Progress(on_stage, on_epoch),
                                                  command=_command_line(), comparisons=comparisons)
    if show:
        _print_compare(result)
    console.print(f"wrote {json_path} and {png_path}")
    return result


def _print_compare(result: CompareResult) -> None:
    console.print(render.replicates_table(result))
    if result.tuning_budgets:
        console.print(render.budget_table(result))
    if result.comparisons:
        console.print(render.replicated_comparison_table(result))
    if any(c.sequential is not None for c in result.comparisons):
        console.print(render.sequential_table(result))


@app.command("compare")
@run_options
def compare_cmd(
    arms: ArmsOpt = None,
    replicates: Annotated[str | None, typer.Option(help=_doc(CompareSpec, "replicates"), metavar="R|auto")] = None,
    min_replicates: MinReplicatesOpt = None,
    max_replicates: MaxReplicatesOpt = None,
    margin: MarginOpt = None,
    batch: BatchOpt = None,
    first_replicate: Annotated[int | None, typer.Option(help=_doc(CompareSpec, "first_replicate"))] = None,
    tune: Annotated[str | None, typer.Option("--tune", help=_doc(CompareSpec, "tune"))] = None,
    gamma: Annotated[float | None, typer.Option(help=_doc(CompareSpec, "gamma"))] = None,
    seeds: ReplicateSeedsOpt = None,
    trials: TrialsOpt = None,
    tune_epochs: TuneEpochsOpt = None,
    pruner: PrunerOpt = None,
    epochs: EpochsOpt = None,
    reference: ReferenceOpt = None,
    ablations: AblationsOpt = None,
    workloads: Annotated[str | None, typer.Option(
        "--workloads", help="Comma-separated workloads: the same comparison on each (results in OUT/WORKLOAD/), "
                            "one table row per workload and arm, one plot panel per workload.")] = None,
    *, opts: RunOptions,
) -> None:
    """Replicated comparison: R complete protocol runs, each with its own data, tuning run and seeds.

    Replicate 0 is the protocol itself; finished replicates are reused when the command runs again.
    With --replicates auto, replicates are added until every arm is better, worse or equivalent
    (within --margin) to the reference, or --max-replicates ran (inconclusive).

    Example: sscbench compare --replicates 10   |   sscbench compare --workloads mnist1d-mlp,mnist1d-cnn
    |   sscbench compare --replicates auto --margin 0.5
    """
    with refusals():
        if opts.workload is not None and workloads is not None:
            raise SpecError("give --workload or --workloads, not both")
        names = [w.strip() for w in (workloads or "").split(",") if w.strip()]
        if workloads is not None and not names:
            raise SpecError("--workloads needs at least one workload name")

        def spec_for(name: str | None) -> RunSpec:
            return opts.spec(name, tune={"trials": trials, "epochs": tune_epochs, "pruner": pruner},
                             evaluate={"seeds": seeds, "epochs": epochs, "ablations": ablations,
                                       "reference": reference, "arms": _arms_override(opts.spec_file, arms)},
                             compare={"replicates": _replicates(replicates), "first_replicate": first_replicate,
                                      "tune": tune, "gamma": gamma, "min_replicates": min_replicates,
                                      "max_replicates": max_replicates, "margin": margin, "batch": batch})

        if not names:
            _compare(task.resolve_run(spec_for(None)), opts.out)
            return
        runs = {}
        for name in dict.fromkeys(names):  # every workload refused up front
            spec = spec_for(name)
            compare.check(spec)
            runs[name] = task.resolve_run(
                spec, ["baseline", *(a.regularizer for a in workflow.expand_ablations(spec).evaluate.arms)])
        started = compare.now()
        family = sum(compare.family_size(run.spec) for run in runs.values())  # alpha split over every workload's
        done = [_compare(run, opts.out / name, family) for name, run in runs.items()]
        result, json_path, png_path = compare.save_workloads(list(runs), done, opts.out, started, _command_line())
        console.print(render.workloads_comparison_table(result))
        console.print(f"wrote {json_path} and {png_path}")


@app.command("study")
@run_options
def study_cmd(
    arms: Annotated[str | None, typer.Option(
        help="Comma-separated regularizers, the reference included (default: every built-in one).")] = None,
    workloads: Annotated[str | None, typer.Option(
        "--workloads", help="Comma-separated workloads (default: every built-in workload whose data is "
                            "available); results in OUT/WORKLOAD/.")] = None,
    replicates: Annotated[str | None, typer.Option(
        help=_doc(CompareSpec, "replicates") + " A study's default is 'auto'.", metavar="R|auto")] = None,
    min_replicates: MinReplicatesOpt = None,
    max_replicates: MaxReplicatesOpt = None,
    margin: MarginOpt = None,
    batch: BatchOpt = None,
    seeds: ReplicateSeedsOpt = None,
    trials: TrialsOpt = None,
    tune_epochs: TuneEpochsOpt = None,
    pruner: PrunerOpt = None,
    epochs: EpochsOpt = None,
    reference: ReferenceOpt = None,
    *, opts: RunOptions,
) -> None:
    """Every regularizer against the reference on every workload: one replicated comparison per cell.

    Cells are decided by the sequential rule (--replicates auto) with alpha split over every cell;
    the run resumes, and workers on a shared storage serve it as they serve compare.
    Writes OUT/study.json beside each workload's OUT/WORKLOAD/compare.json.

    Example: sscbench study   |   sscbench study --arms baseline,ssc,gradnorm --pruner hyperband
    |   sscbench study --workloads mnist1d-mlp,mnist1d-cnn --max-replicates 10
    """
    from sscbench.stages import study

    with refusals():
        if opts.workload is not None:
            raise SpecError("a study runs on --workloads (comma-separated), not --workload")
        names = [w.strip() for w in workloads.split(",") if w.strip()] if workloads is not None \
            else study.default_workloads()
        if not names:
            raise SpecError("--workloads needs at least one workload name" if workloads is not None
                            else "no built-in workload is available here")
        own = opts.spec_file is not None and build_spec(opts.spec_file).evaluate.arms != RunSpec().evaluate.arms
        chosen = arms if arms is not None or own else ",".join(study.default_arms())  # else the spec file's

        def spec_for(name: str, arm_names: str) -> RunSpec:
            return opts.spec(name, tune={"trials": trials, "epochs": tune_epochs, "pruner": pruner},
                             evaluate={"seeds": seeds, "epochs": epochs, "reference": reference,
                                       "arms": _arms_override(opts.spec_file, arm_names)},
                             compare={"replicates": _replicates(replicates) or "auto",
                                      "min_replicates": min_replicates, "max_replicates": max_replicates,
                                      "margin": margin, "batch": batch})

        probe = {name: task.resolve_run(spec_for(name, chosen)) for name in dict.fromkeys(names)}
        first = next(iter(probe.values())).spec
        the_plan = study.plan({a.name: a.regularizer for a in first.evaluate.arms},
                              {n: r.task.shape for n, r in probe.items()}, first.evaluate.reference)
        runs = {}
        for name in probe:  # every workload and plugin refused up front
            spec = spec_for(name, ",".join(the_plan.arms_on(name)))
            compare.check(spec)
            runs[name] = task.resolve_run(spec, [a.regularizer for a in spec.evaluate.arms])
        result, path = study.run(runs, the_plan, opts.out, _command_line(),
                                 lambda name, run, out, family: _compare(run, out, family, show=False))
        console.print(render.study_table(result))
        console.print(f"wrote {path}")


@app.command("worker")
def worker_cmd(
    storage: Annotated[str | None, typer.Option(
        envvar=STORAGE_ENV, show_envvar=True,
        help="Optuna storage URL to serve, e.g. postgresql+psycopg://USER@HOST/DB (or [storage] url of --spec); "
             "the password from PGPASSWORD or ~/.pgpass.")] = None,
    until_empty: Annotated[bool, typer.Option(
        "--until-empty/--forever", help="Stop when no study needs work (default), or keep polling.")] = True,
    spec_file: SpecOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Serve the pending work in a storage: tuning trials and evaluation units of any sscbench study.

    Results files are written by the tune / evaluate / compare commands whose work it shares.

    Example: sscbench worker --storage postgresql+psycopg://user@db-host/sscbench
    """
    from sscbench.stages import storage as storage_mod
    from sscbench.stages import workqueue

    with refusals():
        spec = _spec(spec_file, train={"threads": threads}, storage={"url": storage})
        if spec.storage.url is None:
            raise SpecError(f"worker needs a storage: give --storage URL, set {STORAGE_ENV}, or set [storage] url "
                            "in the --spec file")
        workflow.apply_runtime(spec)
        opened = storage_mod.open_storage(spec.storage.url, spec.storage)
        served = workqueue.serve(opened, until_empty, on_study=lambda name: console.print(f"serving {name}"))
    console.print(f"served {len(served)} study(ies); nothing left to do in {opened.masked}")


@app.command("copy-storage")
def copy_storage_cmd(
    from_url: Annotated[str, typer.Argument(metavar="FROM_URL", help="The storage to copy, left untouched.")],
    to_url: Annotated[str, typer.Argument(metavar="TO_URL", help="The storage to copy into, holding none of "
                                          "FROM_URL's study names (a SQLite file is made where none is).")],
) -> None:
    """Copy every study of one storage into another: move a run begun on SQLite to PostgreSQL, where workers join it.

    Trial numbers and the sampler's state are kept, so the run resumes where it stopped.

    Copied the other way, a PostgreSQL run is backed up into a SQLite file.

    All or nothing: a failure or Ctrl-C part-way deletes what was copied. The source must be idle.

    Example: sscbench copy-storage sqlite:///results/optuna.db postgresql+psycopg://user@db-host/sscbench
    """
    from sscbench.stages import transfer

    none = "the destination holds none of the studies"
    with refusals():
        try:
            copied = transfer.copy_storage(from_url, to_url)
        except KeyboardInterrupt as exc:
            name, code = ("SIGTERM", 143) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
            errors.print(f"[bold red]interrupted[/bold red] ({name}): {none}", highlight=False)
            raise typer.Exit(code) from None
        except (SQLAlchemyError, OSError) as exc:  # a database error part-way (a full disk, a lost server)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            errors.print(f"[bold red]storage error:[/bold red] {escape(redact.mask(first))}; {none}",
                         highlight=False)
            raise typer.Exit(1) from None
    trials = sum(count for _, count in copied)
    console.print(f"copied {len(copied)} studies ({trials} trials) from {transfer.shown(from_url)} to "
                  f"{transfer.shown(to_url)}", highlight=False)


@app.command("check-plugin")
def check_plugin_cmd(
    name: Annotated[str, typer.Argument(help="Registered regularizer to check (see `sscbench plugins`).")],
    workload: Annotated[str | None, typer.Option(
        "--workload", help="Check on this workload only (default: every workload the plugin accepts).")] = None,
) -> None:
    """Run the plugin contract checks on a registered regularizer, on the workloads it accepts; exit 1 on a failure.

    Example: sscbench check-plugin ssc   |   sscbench check-plugin ssc --workload mnist1d-cnn
    """
    from sscbench.contracts import checks as contract

    with refusals():
        if workload is not None:
            task.resolve_run(RunSpec(workload={"name": workload}), [name])
        checks = contract.check_plugin(name, None if workload is None else [workload])
    console.print(render.contract_table(name, checks))
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


def _json_files(paths: list[Path]) -> list[Path]:
    """The files named, and every ``*.json`` under the folders named (sorted); a missing path is refused."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.json") if p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise ResultsError(f"no such file or folder: {path}")
    return list(dict.fromkeys(found))


@app.command("scrub")
def scrub_cmd(
    paths: Annotated[list[Path], typer.Argument(
        help="Results files, or folders (every *.json in them, recursively).", show_default=False,
        metavar="PATH")],
) -> None:
    """Mask storage passwords in results files written by an older sscbench: in place, each file atomically.

    Every file is read and checked before any is rewritten; a file that holds no password is left as it is.

    Example: sscbench scrub results/   |   sscbench scrub old/tune-ssc.json old/compare.json
    """
    import os

    with refusals():
        files = _json_files(paths)
        changes = {path: results.scrubbed(path) for path in files}  # every file read before any is written
        for path, text in changes.items():
            if text is not None:
                results.write_atomic(path, text, mode=os.stat(path).st_mode & 0o7777)
                console.print(f"scrubbed {path}")
    clean = sum(text is None for text in changes.values())
    console.print(f"{len(files) - clean} file(s) scrubbed, {clean} already clean")


def _warn_if_secret(path: Path) -> None:
    """One line on stderr where a results file (written before sscbench masked passwords) holds one."""
    try:
        found = results.scrubbed(path) is not None
    except ResultsError:
        return  # loading it reports the problem
    if found:
        errors.print(f"[bold yellow]warning:[/bold yellow] {escape(str(path))} holds a storage password in clear; "
                     f"mask it with `sscbench scrub {escape(str(path))}`", highlight=False)


@app.command("report")
def report_cmd(
    out: OutOpt = Path("results"),
    reference: Annotated[str | None, typer.Option(
        help="Compare against this arm instead (recomputed from the stored per-seed results; "
             "the JSON file is left as it is).")] = None,
    html: Annotated[bool, typer.Option(
        "--html", help="Also write OUT/report.html: one self-contained page (no network needed) of the study, "
                       "comparison, evaluation or tunings in OUT.")] = False,
) -> None:
    """Re-render the tables and the plot from existing results files (no training); --html writes a page.

    Example: sscbench report --out results   |   sscbench report --reference ssc   |   sscbench report --html
    """
    from sscbench.output import plot

    with refusals():
        tune_files = sorted(out.glob("tune-*.json"))
        evaluate_file, compare_file = out / "evaluate.json", out / "compare.json"
        workloads_file, study_file = out / "compare-workloads.json", out / "study.json"
        if not tune_files and not any(p.exists() for p in (evaluate_file, compare_file, workloads_file, study_file)):
            raise ResultsError(f"no results in {out}: run `sscbench tune PLUGIN`, `sscbench evaluate`, "
                               "`sscbench compare` or `sscbench study` first")
        for path in [*tune_files, evaluate_file, compare_file, workloads_file, study_file]:
            if path.exists():
                _warn_if_secret(path)
        loaded_compare = results.load(compare_file, CompareResult) if compare_file.exists() else None
        loaded_tunes = [results.load(p, TuneResult) for p in tune_files]
        loaded_eval = results.load(evaluate_file, EvaluateResult) if evaluate_file.exists() else None
        loaded_workloads = results.load(workloads_file, results.WorkloadsCompareResult) \
            if workloads_file.exists() else None
        loaded_study = results.load(study_file, results.StudyResult) if study_file.exists() else None
        if reference is not None:
            if loaded_eval is None:
                raise ResultsError(f"--reference needs {evaluate_file}: run `sscbench evaluate` first")
            loaded_eval = workflow.with_reference(loaded_eval, reference)
        for result in loaded_tunes:
            console.print(render.tune_table(result))
        if loaded_eval is not None:
            _print_evaluation(loaded_eval)
            plot.save_figure(loaded_eval, out / "evaluate.png")
            console.print(f"wrote {out / 'evaluate.png'}")
        if loaded_compare is not None:
            _print_compare(loaded_compare)
            plot.save_compare_figure(loaded_compare, out / "compare.png")
            console.print(f"wrote {out / 'compare.png'}")
        if loaded_workloads is not None:
            console.print(render.workloads_comparison_table(loaded_workloads))
            plot.save_workloads_figure(loaded_workloads, out / "compare-workloads.png")
            console.print(f"wrote {out / 'compare-workloads.png'}")
        if loaded_study is not None:
            console.print(render.study_table(loaded_study))
        if html:
            from sscbench.output import html as html_mod

            if loaded_study is not None:
                page = html_mod.study_page(loaded_study)
            elif loaded_workloads is not None:
                page = html_mod.workloads_page(loaded_workloads)
            elif loaded_compare is not None:
                page = html_mod.compare_page(loaded_compare)
            elif loaded_eval is not None:
                page = html_mod.evaluate_page(loaded_eval)
            else:
                page = html_mod.tune_page(loaded_tunes)
            results.write_atomic(out / "report.html", page)
            console.print(f"wrote {out / 'report.html'}")


@app.command("export")
def export_cmd(
    out: OutOpt = Path("results"),
    fmt: Annotated[str, typer.Option(
        "--format", help="csv, or parquet (needs pandas and pyarrow).", metavar="csv|parquet")] = "csv",
    to: Annotated[Path | None, typer.Option(
        "--to", help="The file to write (default: OUT/export.csv or OUT/export.parquet).")] = None,
) -> None:
    """One tidy row per (workload, arm, replicate, seed) with hyperparameters, accuracies and seeds.

    Reads OUT/study.json, else compare-workloads.json, compare.json or evaluate.json (the first found).
    The columns are described in docs/commands.md.

    Example: sscbench export --out results   |   sscbench export --format parquet --to study.parquet
    """
    from sscbench.output import export

    with refusals():
        if fmt not in ("csv", "parquet"):
            raise SpecError(f"--format must be csv or parquet, got '{fmt}'")
        kinds = [("study.json", results.StudyResult), ("compare-workloads.json", results.WorkloadsCompareResult),
                 ("compare.json", CompareResult), ("evaluate.json", EvaluateResult)]
        found = next(((out / name, kind) for name, kind in kinds if (out / name).exists()), None)
        if found is None:
            raise ResultsError(f"nothing to export in {out}: it holds no study.json, compare-workloads.json, "
                               "compare.json or evaluate.json")
        path, kind = found
        _warn_if_secret(path)
        columns, rows = export.rows(results.load(path, kind))
        target = to or out / f"export.{fmt}"
        export.write(columns, rows, target, fmt)
    console.print(f"wrote {len(rows)} rows of {path.name} to {target}")


if __name__ == "__main__":
    app()
