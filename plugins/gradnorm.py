"""``gradnorm``: input-gradient norm penalty (double backpropagation).

    term = lambda_gradnorm * mean_i ||g_i||_2^2,   g_i = d z_{y_i} / d x_i

on the same target-logit input gradient SSC uses, so it costs the same. Source:
Drucker & LeCun, "Improving generalization performance using double
backpropagation", IEEE Trans. Neural Networks 3(6), 1992. Search range of
lambda_gradnorm: [1e-5, 1e-1], log-uniform (||g||^2 is O(1-100) for this MLP,
so the top of the range already rivals the cross-entropy).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.spec import SearchRange


class GradNormParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_gradnorm: float = Field(1e-3, ge=0, description="Weight of the squared input-gradient norm.")


class GradNorm(Regularizer):
    name = "gradnorm"
    description = "Double backpropagation: lambda * mean squared norm of the target logit's input gradient."
    Params = GradNormParams
    search_space = {"lambda_gradnorm": SearchRange(low=1e-5, high=1e-1, log=True)}
    weight = "lambda_gradnorm"

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return params["lambda_gradnorm"] * ctx.saliency.square().flatten(2).sum(-1).mean(-1)
