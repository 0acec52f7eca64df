"""Contract tests run on every discovered regularizer plugin, the day it is installed."""

from __future__ import annotations

import pytest
import torch

from sscbench import registry
from sscbench.model import StackedMLP
from sscbench.regularizer import BatchContext, Regularizer

PLUGINS = registry.available()
S, B, WIDTHS = 3, 24, [40, 32, 32, 10]


def context(seed: int = 0) -> tuple[StackedMLP, BatchContext]:
    gen = torch.Generator().manual_seed(seed)
    model = StackedMLP.init(WIDTHS, list(range(S))).requires_grad_(True)
    x = torch.randn(S, B, WIDTHS[0], generator=gen).requires_grad_(True)
    y = torch.randint(0, WIDTHS[-1], (S, B), generator=gen)
    return model, BatchContext(x, y, model(x), seeds=list(range(S)), step=0)


def hyperparameters(plugin: Regularizer, pick: str) -> dict[str, torch.Tensor]:
    values = plugin.defaults()
    for key, rng in plugin.search_space.items():
        values[key] = {"low": rng.low, "high": rng.high}[pick]
    plugin.Params.model_validate(values)  # the search space's ends are valid hyperparameters
    return {k: torch.full((S,), float(v)) for k, v in values.items()}


def test_builtins_are_discovered():
    assert {"baseline", "ssc"} <= set(PLUGINS)


@pytest.mark.parametrize("name", PLUGINS)
def test_declares_its_interface(name):
    plugin = registry.load(name)
    assert isinstance(plugin, Regularizer) and plugin.name == name
    assert plugin.description and "\n" not in plugin.description
    plugin.Params()  # every hyperparameter has a default
    for key, rng in plugin.search_space.items():
        assert key in plugin.param_names() and rng.low < rng.high


@pytest.mark.parametrize("pick", ["low", "high"])
@pytest.mark.parametrize("name", PLUGINS)
def test_penalty_is_finite_one_value_per_member(name, pick):
    plugin = registry.load(name)
    _, ctx = context()
    out = plugin.penalty(ctx, hyperparameters(plugin, pick))
    assert out.shape == (S,) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", PLUGINS)
def test_gradient_reaches_every_weight_when_switched_on(name):
    plugin = registry.load(name)
    if not plugin.search_space:
        pytest.skip(f"{name} has no term to switch on")
    model, ctx = context()
    out = plugin.penalty(ctx, hyperparameters(plugin, "high"))
    grads = torch.autograd.grad(out.sum(), model.weights, allow_unused=True)
    for layer, g in enumerate(grads):
        assert g is not None, f"layer {layer}'s weight gets no gradient"
        assert torch.isfinite(g).all()
        for s in range(S):
            assert g[s].abs().sum() > 0, f"member {s}'s layer-{layer} weight gets a zero gradient"


@pytest.mark.parametrize("name", PLUGINS)
def test_members_do_not_interact(name):
    plugin = registry.load(name)
    _, ctx = context()
    hp = hyperparameters(plugin, "high")
    together = plugin.penalty(ctx, hp)
    for s in range(S):
        x = ctx.inputs[s:s + 1].detach().requires_grad_(True)
        model = StackedMLP.init(WIDTHS, [s]).requires_grad_(True)
        alone = plugin.penalty(BatchContext(x, ctx.labels[s:s + 1], model(x), seeds=[s], step=0),
                               {k: v[s:s + 1] for k, v in hp.items()})
        torch.testing.assert_close(together[s:s + 1], alone, rtol=1e-4, atol=1e-6)
