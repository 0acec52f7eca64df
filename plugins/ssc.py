"""``ssc``: Spectral Saliency Consistency.

For the input gradient of the target logit g_i = d z_{y_i} / d x_i:

    P_i = |rfft(g_i)| / (|| |rfft(g_i)| ||_2 + 1e-8)
    SSC = mean over classes c with n_c >= 2 of mean_f Var_{i: y_i = c}(P_{i,f})

with the unbiased variance (divided by n_c - 1, as ``torch.var``); classes with
fewer than two samples in the batch are skipped and SSC is 0 when none is kept.
The loss term is lambda_ssc * SSC (PROTOCOL.md, "The SSC term").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.spec import SearchRange

NORM_EPS = 1e-8  # added to the spectrum's L2 norm, as the seed did


def normalized_spectrum(saliency: torch.Tensor) -> torch.Tensor:
    """|rfft(g)| / (|| |rfft(g)| ||_2 + 1e-8) along the last axis: [..., D] -> [..., D//2+1].

    The norm is taken as s * ||P / s|| with a constant s = max(1, max P), the
    same value and gradient, but squares of huge maps cannot overflow.
    """
    spectrum = torch.fft.rfft(saliency, dim=-1).abs()
    scale = spectrum.detach().amax(-1, keepdim=True).clamp_min(1.0)
    norm = scale * torch.linalg.vector_norm(spectrum / scale, dim=-1, keepdim=True)
    return spectrum / (norm + NORM_EPS)


def classwise_variance(values: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Mean over kept classes of the per-feature unbiased variance within each class.

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


def ssc_penalty(saliency: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """The unweighted SSC term: saliency [..., B, D] float, labels [..., B] int64 -> [...]."""
    return classwise_variance(normalized_spectrum(saliency), labels, num_classes)


class SSCParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_ssc: float = Field(1e-3, ge=0, description="Weight of the SSC term.")


class SSC(Regularizer):
    name = "ssc"
    description = "Spectral Saliency Consistency: class-wise variance of normalised |rfft| of input gradients."
    Params = SSCParams
    search_space = {"lambda_ssc": SearchRange(low=1e-4, high=1.0, log=True)}

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return params["lambda_ssc"] * ssc_penalty(ctx.saliency, ctx.labels, ctx.num_classes)

    def is_inactive(self, params: Mapping[str, torch.Tensor]) -> bool:
        return bool((params["lambda_ssc"] == 0).all())
