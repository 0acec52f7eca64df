"""Contract checks run on every discovered regularizer plugin, the day it is installed."""

from __future__ import annotations

import pytest
import torch

from sscbench.contracts import checks as contract
from sscbench.contracts import registry
from sscbench.regularizer import BatchContext, Regularizer

PLUGINS = registry.available()


def test_builtins_are_discovered():
    assert {"baseline", "ssc", "gradnorm", "spatial", "jacobian", "labelsmooth"} <= set(PLUGINS)


WORKLOADS = registry.WORKLOADS.available()
PAIRS = [(p, w) for p in PLUGINS for w in contract.accepted_workloads(registry.load(p))]


def test_every_builtin_plugin_accepts_every_builtin_workload_with_1d_inputs():
    builtin = {"mnist1d-mlp", "mnist1d-cnn", "mnist1d-shuffled", "mnist1d-noisy"}
    assert builtin <= set(WORKLOADS)
    for name in ("baseline", "ssc", "gradnorm", "spatial", "jacobian", "labelsmooth"):
        assert builtin <= set(contract.accepted_workloads(registry.load(name)))


@pytest.mark.parametrize("check", sorted(contract.CHECKS))
@pytest.mark.parametrize("name", PLUGINS)
def test_contract(name, check):
    contract.CHECKS[check](registry.load(name), contract.SMALL_MLP)


@pytest.mark.parametrize(("name", "workload"), PAIRS)
def test_check_plugin_passes_on_every_accepted_workload(name, workload):
    results = contract.check_plugin(name, [workload])
    assert [r.check for r in results] == list(contract.CHECKS)
    assert all(r.passed and r.workload == workload for r in results), [r for r in results if not r.passed]


class _Leaky(Regularizer):
    """Breaks two rules at once: one value for the whole stack, and torch's global RNG."""

    name = "leaky"
    description = "broken on purpose"

    def penalty(self, ctx: BatchContext, params):
        return ctx.logits.mean() + torch.rand(1).sum() * 0  # one value for the whole stack


def test_the_checks_can_fail():
    leaky = _Leaky()
    with pytest.raises(contract.ContractViolation, match="shape"):
        contract.check_penalty_shape_and_finiteness(leaky)
    with pytest.raises(contract.ContractViolation, match="global RNG"):
        contract.check_does_not_touch_global_rng(leaky)
