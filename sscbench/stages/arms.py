"""Resolving evaluation arms to complete, validated hyperparameters.

What it is: turns each ``ArmSpec`` into the plugin and the full set of
hyperparameters (lr, weight_decay and every plugin hyperparameter) it trains
with, and records where they came from: the spec, the tune results of its
regularizer, or another arm (``from`` with ``override``).
What it is not: training. Everything here runs before any training starts, so
a bad arm is refused with nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from sscbench.contracts import registry, task
from sscbench.output import results
from sscbench.regularizer import OPTIMIZER_PARAMS, Regularizer
from sscbench.spec import ArmSpec, RunSpec


class ArmError(ValueError):
    """An arm whose hyperparameters cannot be resolved."""


@dataclass(frozen=True)
class ResolvedArm:
    name: str
    regularizer: str
    params: dict[str, float]
    source: str
    defaults_used: tuple[str, ...]
    #: (study name, best params) of every tuning study when tuned with --studies K > 1
    studies: tuple[tuple[str, dict[str, float]], ...] = ()


def complete_params(
    plugin: Regularizer, values: Mapping[str, float], where: str
) -> tuple[dict[str, float], tuple[str, ...]]:
    """lr and weight_decay (required) plus the plugin's hyperparameters, defaults filling gaps."""
    allowed = set(OPTIMIZER_PARAMS) | set(plugin.param_names())
    if unknown := sorted(set(values) - allowed):
        raise ArmError(f"{where}: regularizer '{plugin.name}' has no hyperparameter "
                       f"{', '.join(map(repr, unknown))} (it has: {', '.join(sorted(allowed))})")
    if missing := [k for k in OPTIMIZER_PARAMS if k not in values]:
        raise ArmError(f"{where}: missing {', '.join(missing)}")
    for key in OPTIMIZER_PARAMS:
        if not values[key] >= 0 or (key == "lr" and values[key] == 0):
            raise ArmError(f"{where}: {key} must be {'> 0' if key == 'lr' else '>= 0'}, got {values[key]}")
    own = {k: v for k, v in values.items() if k in plugin.param_names()}
    try:
        validated = plugin.Params.model_validate(own).model_dump()
    except ValidationError as err:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ArmError(f"{where}: {msg}") from None
    defaults_used = tuple(k for k in plugin.param_names() if k not in values)
    full = {k: float(values[k]) for k in OPTIMIZER_PARAMS} | {k: float(v) for k, v in validated.items()}
    return full, defaults_used


ABLATION_SUFFIX = "-off"


def with_ablations(arms: list[ArmSpec]) -> list[ArmSpec]:
    """Add, for every regularized arm R, the arm "R's lr and weight decay, no regularizer".

    The ablation arm is the ``baseline`` plugin taking lr and weight_decay from R
    (``from = R``), named ``R-off``, so that the penalty's effect is separated
    from that of R's different optimizer settings.
    """
    names = {a.name for a in arms}
    extra = [
        ArmSpec(name=f"{a.name}{ABLATION_SUFFIX}", regularizer="baseline", **{"from": a.name})
        for a in arms
        if a.regularizer != "baseline" and f"{a.name}{ABLATION_SUFFIX}" not in names
    ]
    return [*arms, *extra]


def tune_path(out: Path, regularizer: str) -> Path:
    return out / f"tune-{regularizer}.json"


StudyPicks = tuple[tuple[str, dict[str, float]], ...]  # (study name, its best params)


def _from_tuning(arm: ArmSpec, out: Path, spec: RunSpec | None) -> tuple[dict[str, float], str, StudyPicks]:
    path = tune_path(out, arm.regularizer)
    if not path.exists():
        raise ArmError(
            f"arm '{arm.name}' has no hyperparameters: no tune results at {path}. "
            f"Run `sscbench tune {arm.regularizer}` first (with --out {out} if that is not the default), "
            f"or give the arm's params in a spec file"
        )
    tuned = results.load(path, results.TuneResult)
    if spec is not None:
        if task.key(tuned.spec) != task.key(spec):
            theirs, ours = task.normalise(tuned.spec).workload, task.normalise(spec).workload
            raise ArmError(
                f"arm '{arm.name}': {path} was tuned on workload '{theirs.name}' {theirs.args}, and this run is on "
                f"'{ours.name}' {ours.args}; tune it on this workload (`sscbench tune {arm.regularizer} "
                f"--workload {ours.name}`, with its own --out), or give the arm's params"
            )
        for section in ("data",):
            if getattr(tuned.spec, section) != getattr(spec, section):
                raise ArmError(
                    f"arm '{arm.name}': {path} was tuned with a different [{section}] spec "
                    f"({getattr(tuned.spec, section)!r}, here {getattr(spec, section)!r}); "
                    f"re-run `sscbench tune {arm.regularizer}` with this spec, or give the arm's params"
                )
    best = tuned.best
    studies = tuple((s.study_name, dict(s.best.params)) for s in tuned.studies if s.best is not None)
    source = f"tuned: {path} (study {tuned.best_study}, trial {best.number}, value {best.value:.4f})"
    return dict(best.params), source, studies if len(studies) > 1 else ()


#: regularizer -> (its tuned hyperparameters, where they came from)
TunedParams = Mapping[str, tuple[dict[str, float], str]]


def resolve(arms: list[ArmSpec], out: Path, spec: RunSpec | None = None,
            tuned: TunedParams | None = None) -> list[ResolvedArm]:
    """Every arm resolved in the given order; ``from`` may refer to any arm of the list.

    Arms without params take their regularizer's entry of ``tuned`` when given (a
    replicated comparison tunes in memory), else its tune results file in ``out``.
    Tuned hyperparameters are refused when they were tuned on other data or another
    model than ``spec`` describes.
    """
    by_name = {a.name: a for a in arms}
    done: dict[str, ResolvedArm] = {}

    def visit(arm: ArmSpec, chain: tuple[str, ...]) -> ResolvedArm:
        if arm.name in done:
            return done[arm.name]
        if arm.name in chain:
            raise ArmError(f"arms take hyperparameters from each other in a cycle: {' -> '.join(chain + (arm.name,))}")
        try:
            plugin = registry.load(arm.regularizer)
        except registry.PluginError as exc:
            raise ArmError(f"arm '{arm.name}': {exc}") from None
        where = f"arm '{arm.name}'"
        studies: StudyPicks = ()
        if arm.from_ is not None:
            source_arm = visit(by_name[arm.from_], chain + (arm.name,))
            keep = set(OPTIMIZER_PARAMS) | set(plugin.param_names())
            values = {k: v for k, v in source_arm.params.items() if k in keep}
            source = f"from arm '{source_arm.name}'"
        elif arm.params is not None:
            values, source = dict(arm.params), "spec"
        elif tuned is not None:
            values, source = dict(tuned[arm.regularizer][0]), tuned[arm.regularizer][1]
        else:
            values, source, studies = _from_tuning(arm, out, spec)
        if arm.override:
            values.update(arm.override)
            source += " with override " + ", ".join(f"{k}={v:g}" for k, v in arm.override.items())
        params, defaults_used = complete_params(plugin, values, where)
        if arm.override:  # the other studies' picks get the same override, so the spread stays comparable
            studies = tuple((name, p | arm.override) for name, p in studies)
        studies = tuple((name, complete_params(plugin, p, f"{where}, study {name}")[0]) for name, p in studies)
        done[arm.name] = ResolvedArm(arm.name, arm.regularizer, params, source, defaults_used, studies)
        return done[arm.name]

    return [visit(a, ()) for a in arms]
