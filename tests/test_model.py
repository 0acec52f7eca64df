"""The stacked MLP: per-member initialisation identical to nn.Linear, batched forward."""

from __future__ import annotations

import torch
from torch import nn

from sscbench.engine.model import StackedMLP

WIDTHS = [40, 256, 256, 10]


def reference_layers(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def test_member_init_is_bit_identical_to_nn_linear_after_manual_seed():
    stack = StackedMLP.init(WIDTHS, [3, 1, 4, 1, 5])
    for index, seed in enumerate([3, 1, 4, 1, 5]):
        ref = [p.detach() for p in reference_layers(seed).parameters()]
        for ours, theirs in zip(stack.member(index), ref, strict=True):
            assert torch.equal(ours, theirs)


def test_member_init_does_not_depend_on_the_stack():
    alone = StackedMLP.init(WIDTHS, [2])
    stacked = StackedMLP.init(WIDTHS, [0, 1, 2, 3, 4])
    for a, b in zip(alone.member(0), stacked.member(2), strict=True):
        assert torch.equal(a, b)


def test_forward_matches_each_member_run_alone():
    stack = StackedMLP.init(WIDTHS, [0, 1, 2])
    x = torch.randn(3, 17, 40, generator=torch.Generator().manual_seed(0))
    out = stack(x)
    shared = stack(x[1])  # a [B, D] input is shared by all members
    for s in range(3):
        ref = reference_layers(s)
        torch.testing.assert_close(out[s], ref(x[s]))
        torch.testing.assert_close(shared[s], ref(x[1]))
    assert out.shape == (3, 17, 10)
