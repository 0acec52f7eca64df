"""``ssc``: Spectral Saliency Consistency.

For the input gradient of the target logit g_i = d z_{y_i} / d x_i:

    P_i = |rfft(g_i)| / (|| |rfft(g_i)| ||_2 + 1e-8)
    SSC = mean over classes c with n_c >= 2 of mean_f Var_{i: y_i = c}(P_{i,f})

with the unbiased variance (divided by n_c - 1, as ``torch.var``); classes with
fewer than two samples in the batch are skipped and SSC is 0 when none is kept.
The loss term is lambda_ssc * SSC (PROTOCOL.md, "The SSC term"). Source: the
seed experiment (``shared/seed.md``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.saliency import spectral_consistency
from sscbench.spec import SearchRange


def ssc_penalty(saliency: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """The unweighted SSC term: saliency [..., B, D] float, labels [..., B] int64 -> [...]."""
    return spectral_consistency(saliency, labels, num_classes)


class SSCParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_ssc: float = Field(1e-3, ge=0, description="Weight of the SSC term.")


class SSC(Regularizer):
    name = "ssc"
    description = "Spectral Saliency Consistency: class-wise variance of normalised |rfft| of input gradients."
    Params = SSCParams
    search_space = {"lambda_ssc": SearchRange(low=1e-4, high=1.0, log=True)}
    weight = "lambda_ssc"
    input_rank = 1  # an rfft along the signal: 1-D inputs only

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return params["lambda_ssc"] * ssc_penalty(ctx.saliency, ctx.labels, ctx.num_classes)
