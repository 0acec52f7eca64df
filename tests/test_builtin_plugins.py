"""Each built-in plugin's term against an independent, plainly written computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import jacrev

from sscbench.contracts import registry
from sscbench.engine.model import StackedMLP
from sscbench.regularizer import BatchContext

WIDTHS = [40, 16, 16, 10]


def setup(seed=0, size=2, batch=12):
    gen = torch.Generator().manual_seed(seed)
    model = StackedMLP.init(WIDTHS, list(range(size))).requires_grad_(True)
    x = torch.randn(size, batch, 40, generator=gen).requires_grad_(True)
    y = torch.randint(0, 10, (size, batch), generator=gen)
    return model, x, y, BatchContext(x, y, model(x), seeds=list(range(size)), step=3)


def test_gradnorm_is_lambda_times_mean_squared_gradient_norm():
    model, x, y, ctx = setup()
    out = registry.load("gradnorm").penalty(ctx, {"lambda_gradnorm": torch.tensor([0.5, 2.0])}).detach()
    for s in range(2):
        (g,) = torch.autograd.grad(model(x)[s].gather(1, y[s, :, None]).sum(), x)
        expected = (g[s] ** 2).sum(1).mean()
        assert float(out[s]) == pytest.approx([0.5, 2.0][s] * float(expected), rel=1e-5)


def test_spatial_is_classwise_variance_of_unit_maps():
    model, x, y, ctx = setup(batch=30)
    out = registry.load("spatial").penalty(ctx, {"lambda_spatial": torch.tensor([1.0, 1.0])}).detach()
    g = ctx.saliency.detach()
    for s in range(2):
        maps = g[s] / (g[s].norm(dim=1, keepdim=True) + 1e-8)
        per = [maps[y[s] == c].var(0).mean() for c in range(10) if (y[s] == c).sum() >= 2]
        assert float(out[s]) == pytest.approx(float(torch.stack(per).mean()), rel=1e-5)


def test_labelsmooth_plus_cross_entropy_is_torchs_smoothed_cross_entropy():
    _, _, y, ctx = setup()
    eps = torch.tensor([0.1, 0.3])
    term = registry.load("labelsmooth").penalty(ctx, {"epsilon": eps}).detach()
    for s in range(2):
        ce = F.cross_entropy(ctx.logits[s].detach(), y[s])
        smoothed = F.cross_entropy(ctx.logits[s].detach(), y[s], label_smoothing=float(eps[s]))
        assert float(ce + term[s]) == pytest.approx(float(smoothed), rel=1e-5)


def test_jacobian_estimate_is_unbiased_for_the_frobenius_norm():
    model, x, y, ctx = setup(size=1, batch=4)
    plugin = registry.load("jacobian")
    exact = 0.0
    for i in range(4):
        jac = jacrev(lambda xi: model(xi[None, None])[0, 0])(x[0, i].detach())  # [C, D]
        exact += float((jac.detach() ** 2).sum()) / 4
    estimates = []
    for step in range(400):  # fresh projections each step
        ctx = BatchContext(x, y, model(x), seeds=[0], step=step)
        est = plugin.penalty(ctx, {"lambda_jacobian": torch.tensor([2.0]), "projections": torch.tensor([4.0])})
        estimates.append(float(est[0].detach()))  # lambda / 2 = 1
    mean = sum(estimates) / len(estimates)
    assert mean == pytest.approx(exact, rel=0.05)


def test_jacobian_draws_depend_on_member_seed_and_step_only():
    _, x, y, ctx = setup()
    a = ctx.randn(3, 5)
    again = BatchContext(x, y, ctx.logits, seeds=[0, 1], step=3).randn(3, 5)
    other_step = BatchContext(x, y, ctx.logits, seeds=[0, 1], step=4).randn(3, 5)
    alone = BatchContext(x[1:], y[1:], ctx.logits[1:], seeds=[1], step=3).randn(3, 5)
    assert torch.equal(a, again) and not torch.equal(a, other_step) and torch.equal(a[1], alone[0])
