"""The plugin contract as executable checks, for sscbench's tests and for plugin authors.

What it is: each rule of ``sscbench.regularizer`` that can be checked
mechanically, as a function that raises ``ContractViolation`` with a message
saying what is wrong; ``check_plugin`` runs them all on a registered plugin, on
the models and inputs of every discovered workload the plugin accepts.
``sscbench check-plugin NAME`` and the test suite both call these, so a new
plugin is held to the same contract the built-ins are.
What it is not: a statistical test of whether a plugin helps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sscbench.contracts import registry, task
from sscbench.engine.stack import Architecture, Stacked, mlp
from sscbench.regularizer import OPTIMIZER_PARAMS, BatchContext, Regularizer
from sscbench.spec import DataSpec, RunSpec, WorkloadSpec
from sscbench.workload import Shape

S, B = 3, 24


class ContractViolation(AssertionError):
    """A plugin breaks a rule of the interface."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    message: str
    workload: str = ""


@dataclass(frozen=True)
class Probe:
    """The model family and sample shape the checks run on: a workload's, or a small MLP on 1-D signals."""

    arch: Architecture
    classes: int

    @classmethod
    def of_workload(cls, name: str) -> Probe:
        resolved = task.resolve(RunSpec(workload=WorkloadSpec(name=name), data=DataSpec()))
        return cls(resolved.architecture(), resolved.shape.classes)

    @property
    def shape(self) -> Shape:
        return Shape(self.arch.input_shape, self.classes)


SMALL_MLP = Probe(mlp((40, 32, 32, 10)), 10)


def _context(seed: int = 0, probe: Probe = SMALL_MLP) -> tuple[Stacked, BatchContext]:
    gen = torch.Generator().manual_seed(seed)
    model = probe.arch.stack(list(range(S))).requires_grad_(True)
    x = torch.randn(S, B, *probe.arch.input_shape, generator=gen).requires_grad_(True)
    y = torch.randint(0, probe.classes, (S, B), generator=gen)
    return model, BatchContext(x, y, model(x), seeds=list(range(S)), step=0)


def hyperparameters(plugin: Regularizer, pick: str) -> dict[str, torch.Tensor]:
    """The plugin's defaults with every searched hyperparameter at the low or high end of its range."""
    values = plugin.defaults()
    for key, rng in plugin.search_space.items():
        values[key] = {"low": rng.low, "high": rng.high}[pick]
    try:
        plugin.Params.model_validate(values)
    except ValueError as exc:
        raise ContractViolation(f"the {pick} end of the search space is not a valid Params: {exc}") from None
    return {k: torch.full((S,), float(v)) for k, v in values.items()}


def check_declarations(plugin: Regularizer, probe: Probe = SMALL_MLP) -> None:
    """Name, one-line description, Params with defaults, a search space over Params fields."""
    if not plugin.description or "\n" in plugin.description:
        raise ContractViolation("description must be one non-empty line")
    try:
        plugin.Params()
    except ValueError as exc:
        raise ContractViolation(f"every hyperparameter needs a default: {exc}") from None
    if clash := set(plugin.param_names()) & set(OPTIMIZER_PARAMS):
        raise ContractViolation(f"Params must not declare {sorted(clash)}")
    if plugin.weight is not None and plugin.weight not in plugin.param_names():
        raise ContractViolation(f"weight names '{plugin.weight}', which Params lacks")
    for key, rng in plugin.search_space.items():
        if key not in plugin.param_names():
            raise ContractViolation(f"search_space names '{key}', which Params lacks")
        if not rng.low < rng.high:
            raise ContractViolation(f"search range of '{key}' is empty")


def check_penalty_shape_and_finiteness(plugin: Regularizer, probe: Probe = SMALL_MLP) -> None:
    """One finite value per member, at both ends of the search space."""
    for pick in ("low", "high"):
        _, ctx = _context(probe=probe)
        out = plugin.penalty(ctx, hyperparameters(plugin, pick))
        if not isinstance(out, torch.Tensor) or out.shape != (S,):
            shape = getattr(out, "shape", type(out).__name__)
            raise ContractViolation(f"penalty must return shape [{S}] for {S} members, got {shape}")
        if not torch.isfinite(out).all():
            raise ContractViolation(f"penalty is not finite at the {pick} end of the search space: {out.tolist()}")


def check_gradients_reach_every_weight(plugin: Regularizer, probe: Probe = SMALL_MLP) -> None:
    """With its hyperparameters at the top of their range, the term moves every weight of every member."""
    if not plugin.search_space:
        return  # nothing to switch on
    model, ctx = _context(probe=probe)
    out = plugin.penalty(ctx, hyperparameters(plugin, "high"))
    weights = [p for p in model.parameters() if p.dim() >= 3]  # [S, ...] of a matrix or a kernel: not biases
    grads = torch.autograd.grad(out.sum(), weights, allow_unused=True)
    for layer, g in enumerate(grads):
        if g is None:
            raise ContractViolation(f"layer {layer}'s weight gets no gradient from the penalty")
        if not torch.isfinite(g).all():
            raise ContractViolation(f"layer {layer}'s weight gets a non-finite gradient")
        for s in range(S):
            if not g[s].abs().sum() > 0:
                raise ContractViolation(f"member {s}'s layer-{layer} weight gets a zero gradient")


def check_members_do_not_interact(plugin: Regularizer, probe: Probe = SMALL_MLP) -> None:
    """Member s's value depends only on member s's slice of the context."""
    _, ctx = _context(probe=probe)
    hp = hyperparameters(plugin, "high")
    together = plugin.penalty(ctx, hp).detach()
    for s in range(S):
        x = ctx.inputs[s:s + 1].detach().requires_grad_(True)
        model = probe.arch.stack([s]).requires_grad_(True)
        alone = plugin.penalty(BatchContext(x, ctx.labels[s:s + 1], model(x), seeds=[s], step=0),
                               {k: v[s:s + 1] for k, v in hp.items()}).detach()
        if not torch.allclose(together[s:s + 1], alone, rtol=1e-4, atol=1e-6):
            raise ContractViolation(f"member {s}: {float(alone[0])} alone but {float(together[s])} in a stack")


def check_does_not_touch_global_rng(plugin: Regularizer, probe: Probe = SMALL_MLP) -> None:
    """The penalty leaves torch's global RNG state as it found it (use ctx.randn)."""
    _, ctx = _context(probe=probe)
    before = torch.get_rng_state()
    plugin.penalty(ctx, hyperparameters(plugin, "high"))
    if not torch.equal(before, torch.get_rng_state()):
        raise ContractViolation("penalty used torch's global RNG; draw from ctx.randn(...) instead")


def check_inactive_means_zero(plugin: Regularizer, probe: Probe = SMALL_MLP) -> None:
    """Where ``is_inactive`` says the term is off (searched hyperparameters at 0), the penalty is zero."""
    values = plugin.defaults() | {k: 0.0 for k in plugin.search_space}
    hp = {k: torch.full((S,), float(v)) for k, v in values.items()}
    if plugin.search_space and plugin.is_inactive(hp):
        _, ctx = _context(probe=probe)
        if not torch.equal(plugin.penalty(ctx, hp).detach(), torch.zeros(S)):
            raise ContractViolation("is_inactive is True for all-zero hyperparameters, but the penalty is not 0")


CHECKS: dict[str, Callable[[Regularizer, Probe], None]] = {
    "declarations": check_declarations,
    "penalty shape and finiteness": check_penalty_shape_and_finiteness,
    "gradients reach every weight": check_gradients_reach_every_weight,
    "members do not interact": check_members_do_not_interact,
    "no global RNG": check_does_not_touch_global_rng,
    "inactive means zero": check_inactive_means_zero,
}


def accepted_workloads(plugin: Regularizer) -> list[str]:
    """Every discovered workload whose inputs the plugin accepts (``Regularizer.accepts``) and that can run
    here (``Workload.available``: a workload whose optional package is missing is left out)."""
    out = []
    for name in registry.WORKLOADS.available():
        workload = registry.load_workload(name)
        if workload.available() is None and plugin.accepts(workload.shape(workload.Args(), DataSpec())) is None:
            out.append(name)
    return out


def check_plugin(name: str, workloads: list[str] | None = None) -> list[CheckResult]:
    """Load the registered plugin and run every check on every workload it accepts (or on ``workloads``).

    A load failure is a registry.PluginError.
    """
    plugin = registry.load(name)
    results = []
    for workload in (accepted_workloads(plugin) if workloads is None else workloads):
        probe = Probe.of_workload(workload)
        for check, fn in CHECKS.items():
            try:
                fn(plugin, probe)
            except ContractViolation as exc:
                results.append(CheckResult(check, False, str(exc), workload))
            except Exception as exc:  # a crash inside the plugin is a failed check, reported, not raised
                results.append(CheckResult(check, False, f"raised {type(exc).__name__}: {exc}", workload))
            else:
                results.append(CheckResult(check, True, fn.__doc__.strip().splitlines()[0], workload))
    return results
