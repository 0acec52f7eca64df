"""Mechanism diagnostics of trained stacks: does the regularizer do what it claims?

What it is: pure measurements of a trained stack (any workload's) (and of one training
step's gradients), one value per member:
- the ratio of the regularizer's gradient norm to the cross-entropy's on a
  fixed probe batch (does the penalty move the weights at the tuned weight?);
- the spectral consistency of saliency maps (the unweighted SSC quantity) on a
  split, grouped by class, for any arm, regularized or not;
- the mean normalised saliency spectrum per class;
- accuracy under circular shifts of the inputs.
What it is not: training or output; ``sscbench.evaluation`` calls these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from sscbench.data import Split
from sscbench.engine.stack import Stacked
from sscbench.regularizer import BatchContext, Regularizer
from sscbench.saliency import normalized_spectrum, spectral_consistency, target_saliency

SHIFTS = tuple(range(-8, 9))


def _per_member_norm(grads: Sequence[torch.Tensor | None], size: int) -> torch.Tensor:
    total = torch.zeros(size)
    for g in grads:
        if g is not None:
            total += g.detach().flatten(1).square().sum(1).cpu()
    return total.sqrt()


@torch.enable_grad()
def gradient_norm_ratio(model: Stacked, regularizer: Regularizer, hp: Mapping[str, torch.Tensor],
                        probe: Split, seeds: Sequence[int]) -> torch.Tensor:
    """||grad of the regularizer term|| / ||grad of the cross-entropy|| per member, on one probe batch: [S]."""
    params = model.parameters()
    was_trainable = params[0].requires_grad
    model.requires_grad_(True)
    try:
        x = probe.x.expand(model.size, *probe.x.shape).clone().requires_grad_(True)
        y = probe.y.expand(model.size, *probe.y.shape)
        logits = model(x)
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
        ce_norm = _per_member_norm(torch.autograd.grad(ce.sum(), params, retain_graph=True), model.size)
        if regularizer.is_inactive(hp):
            return torch.zeros(model.size)
        term = regularizer.penalty(BatchContext(x, y, logits, seeds=seeds, step=0), hp)
        reg_norm = _per_member_norm(torch.autograd.grad(term.sum(), params, allow_unused=True), model.size)
        return reg_norm / ce_norm.clamp_min(torch.finfo(ce_norm.dtype).tiny)
    finally:
        model.requires_grad_(was_trainable)


#: Samples per pass of the diagnostics (as ``trainer.accuracy``): a split larger than this is taken in
#: parts, each sample's values being its own (samples never interact).
CHUNK = 4096


def saliency(model: Stacked, split: Split, chunk: int = CHUNK) -> torch.Tensor:
    """d z_y / d x on a split shared by all members: [S, N, D], ``chunk`` samples per pass."""
    parts = []
    with torch.enable_grad():
        for start in range(0, len(split), chunk):
            xs, ys = split.x[start:start + chunk], split.y[start:start + chunk]
            x = xs.expand(model.size, *xs.shape).clone().requires_grad_(True)
            parts.append(target_saliency(model(x), x, ys.expand(model.size, *ys.shape)).detach())
    return torch.cat(parts, dim=1)


def consistency(sal: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Spectral consistency (unweighted SSC over the whole split, grouped by class) per member: [S]."""
    return spectral_consistency(sal, labels.expand(sal.shape[0], *labels.shape), num_classes)


def spectrum_by_class(sal: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean normalised saliency spectrum of each class per member: [S, C, F]."""
    spec = normalized_spectrum(sal)  # [S, N, F]
    onehot = F.one_hot(labels, num_classes).to(spec.dtype)  # [N, C]
    return (onehot.T @ spec) / onehot.sum(0).clamp_min(1).unsqueeze(-1)


@torch.no_grad()
def shift_accuracy(model: Stacked, split: Split, shifts: Sequence[int] = SHIFTS, chunk: int = CHUNK) -> torch.Tensor:
    """Accuracy per member with the inputs circularly shifted by k samples, for each k: [S, K]."""
    out = []
    for k in shifts:
        rolled = torch.roll(split.x, k, dims=-1)
        correct = sum((model(rolled[start:start + chunk]).argmax(-1) == split.y[start:start + chunk]).float().sum(-1)
                      for start in range(0, len(split), chunk))
        out.append(correct / len(split))
    return torch.stack(out, dim=1)
