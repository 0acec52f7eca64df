"""Saliency maps and their spectra: pure tensor functions shared by plugins and diagnostics.

What it is: the input gradient of the target logit, the normalised magnitude
spectrum of a map, and the class-wise variance of per-sample features. Plugins
(``ssc``, ``spatial``) build their terms from these; the diagnostics use the
same functions to measure every arm, regularized or not.
What it is not: a regularizer; nothing here is weighted or tuned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORM_EPS = 1e-8  # added to an L2 norm before dividing, as the seed did


def target_saliency(logits: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor,
                    create_graph: bool = False) -> torch.Tensor:
    """d z_y / d x for every sample in one backward of sum(z_y) (samples do not interact)."""
    target = logits.gather(-1, labels.unsqueeze(-1)).sum()
    (grad,) = torch.autograd.grad(target, inputs, create_graph=create_graph)
    return grad


def unit_normalize(values: torch.Tensor) -> torch.Tensor:
    """v / (||v||_2 + 1e-8) along the last axis.

    The norm is taken as s * ||v / s|| with a constant s = max(1, max |v|):
    the same value and gradient, but squares of huge values cannot overflow.
    """
    scale = values.detach().abs().amax(-1, keepdim=True).clamp_min(1.0)
    norm = scale * torch.linalg.vector_norm(values / scale, dim=-1, keepdim=True)
    return values / (norm + NORM_EPS)


def normalized_spectrum(saliency: torch.Tensor) -> torch.Tensor:
    """|rfft(g)| / (|| |rfft(g)| ||_2 + 1e-8) along the last axis: [..., D] -> [..., D//2+1]."""
    return unit_normalize(torch.fft.rfft(saliency, dim=-1).abs())


def classwise_variance(values: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Mean over kept classes of the mean over features of the unbiased within-class variance.

    values [..., B, F], labels [..., B] (class indices >= 0) -> [...]. A class is
    kept when it has at least two samples; the result is 0 when none is kept.
    """
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.numel() else 1
    onehot = F.one_hot(labels, num_classes).to(values.dtype)  # [..., B, C]
    counts = onehot.sum(-2)  # [..., C]
    members_t = onehot.transpose(-1, -2)  # [..., C, B]
    mean = (members_t @ values) / counts.clamp_min(1).unsqueeze(-1)  # [..., C, F]
    centered = values - onehot @ mean  # two-pass variance: no cancellation
    var = (members_t @ centered.square()) / (counts - 1).clamp_min(1).unsqueeze(-1)
    kept = (counts >= 2).to(values.dtype)
    return (var.mean(-1) * kept).sum(-1) / kept.sum(-1).clamp_min(1)


def spectral_consistency(saliency: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """The unweighted SSC quantity: class-wise variance of normalised saliency spectra, [...]."""
    return classwise_variance(normalized_spectrum(saliency), labels, num_classes)
