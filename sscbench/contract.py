"""The plugin contract as executable checks, for sscbench's tests and for plugin authors.

What it is: each rule of ``sscbench.regularizer`` that can be checked
mechanically, as a function that raises ``ContractViolation`` with a message
saying what is wrong; ``check_plugin`` runs them all on a registered plugin.
``sscbench check-plugin NAME`` and the test suite both call these, so a new
plugin is held to the same contract the built-ins are.
What it is not: a statistical test of whether a plugin helps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sscbench import registry
from sscbench.model import StackedMLP
from sscbench.regularizer import OPTIMIZER_PARAMS, BatchContext, Regularizer

S, B, WIDTHS = 3, 24, (40, 32, 32, 10)


class ContractViolation(AssertionError):
    """A plugin breaks a rule of the interface."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    message: str


def _context(seed: int = 0) -> tuple[StackedMLP, BatchContext]:
    gen = torch.Generator().manual_seed(seed)
    model = StackedMLP.init(WIDTHS, list(range(S))).requires_grad_(True)
    x = torch.randn(S, B, WIDTHS[0], generator=gen).requires_grad_(True)
    y = torch.randint(0, WIDTHS[-1], (S, B), generator=gen)
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


def check_declarations(plugin: Regularizer) -> None:
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


def check_penalty_shape_and_finiteness(plugin: Regularizer) -> None:
    """One finite value per member, at both ends of the search space."""
    for pick in ("low", "high"):
        _, ctx = _context()
        out = plugin.penalty(ctx, hyperparameters(plugin, pick))
        if not isinstance(out, torch.Tensor) or out.shape != (S,):
            shape = getattr(out, "shape", type(out).__name__)
            raise ContractViolation(f"penalty must return shape [{S}] for {S} members, got {shape}")
        if not torch.isfinite(out).all():
            raise ContractViolation(f"penalty is not finite at the {pick} end of the search space: {out.tolist()}")


def check_gradients_reach_every_weight(plugin: Regularizer) -> None:
    """With its hyperparameters at the top of their range, the term moves every weight of every member."""
    if not plugin.search_space:
        return  # nothing to switch on
    model, ctx = _context()
    out = plugin.penalty(ctx, hyperparameters(plugin, "high"))
    grads = torch.autograd.grad(out.sum(), model.weights, allow_unused=True)
    for layer, g in enumerate(grads):
        if g is None:
            raise ContractViolation(f"layer {layer}'s weight gets no gradient from the penalty")
        if not torch.isfinite(g).all():
            raise ContractViolation(f"layer {layer}'s weight gets a non-finite gradient")
        for s in range(S):
            if not g[s].abs().sum() > 0:
                raise ContractViolation(f"member {s}'s layer-{layer} weight gets a zero gradient")


def check_members_do_not_interact(plugin: Regularizer) -> None:
    """Member s's value depends only on member s's slice of the context."""
    _, ctx = _context()
    hp = hyperparameters(plugin, "high")
    together = plugin.penalty(ctx, hp).detach()
    for s in range(S):
        x = ctx.inputs[s:s + 1].detach().requires_grad_(True)
        model = StackedMLP.init(WIDTHS, [s]).requires_grad_(True)
        alone = plugin.penalty(BatchContext(x, ctx.labels[s:s + 1], model(x), seeds=[s], step=0),
                               {k: v[s:s + 1] for k, v in hp.items()}).detach()
        if not torch.allclose(together[s:s + 1], alone, rtol=1e-4, atol=1e-6):
            raise ContractViolation(f"member {s}: {float(alone[0])} alone but {float(together[s])} in a stack")


def check_does_not_touch_global_rng(plugin: Regularizer) -> None:
    """The penalty leaves torch's global RNG state as it found it (use ctx.randn)."""
    _, ctx = _context()
    before = torch.get_rng_state()
    plugin.penalty(ctx, hyperparameters(plugin, "high"))
    if not torch.equal(before, torch.get_rng_state()):
        raise ContractViolation("penalty used torch's global RNG; draw from ctx.randn(...) instead")


def check_inactive_means_zero(plugin: Regularizer) -> None:
    """Where ``is_inactive`` says the term is off (searched hyperparameters at 0), the penalty is zero."""
    values = plugin.defaults() | {k: 0.0 for k in plugin.search_space}
    hp = {k: torch.full((S,), float(v)) for k, v in values.items()}
    if plugin.search_space and plugin.is_inactive(hp):
        _, ctx = _context()
        if not torch.equal(plugin.penalty(ctx, hp).detach(), torch.zeros(S)):
            raise ContractViolation("is_inactive is True for all-zero hyperparameters, but the penalty is not 0")


CHECKS: dict[str, Callable[[Regularizer], None]] = {
    "declarations": check_declarations,
    "penalty shape and finiteness": check_penalty_shape_and_finiteness,
    "gradients reach every weight": check_gradients_reach_every_weight,
    "members do not interact": check_members_do_not_interact,
    "no global RNG": check_does_not_touch_global_rng,
    "inactive means zero": check_inactive_means_zero,
}


def check_plugin(name: str) -> list[CheckResult]:
    """Load the registered plugin and run every check; a load failure is a registry.PluginError."""
    plugin = registry.load(name)
    results = []
    for check, fn in CHECKS.items():
        try:
            fn(plugin)
        except ContractViolation as exc:
            results.append(CheckResult(check, False, str(exc)))
        except Exception as exc:  # a crash inside the plugin is a failed check, reported, not raised
            results.append(CheckResult(check, False, f"raised {type(exc).__name__}: {exc}"))
        else:
            results.append(CheckResult(check, True, fn.__doc__.strip().splitlines()[0]))
    return results
