"""``l1saliency``: lambda_l1 * mean_i mean_d |d z_{y_i} / d x_{i,d}| (a sparse-saliency penalty).

A worked example of a third-party sscbench plugin: one class against
``sscbench.regularizer`` and one entry point in this distribution's
``pyproject.toml``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.spec import SearchRange


class L1SaliencyParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_l1: float = Field(1e-3, ge=0, description="Weight of the term.")


class L1Saliency(Regularizer):
    name = "l1saliency"
    description = "lambda * mean absolute input gradient of the target logit."
    Params = L1SaliencyParams
    search_space = {"lambda_l1": SearchRange(low=1e-5, high=1e-1, log=True)}
    weight = "lambda_l1"

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # ctx.saliency is [S, B, D]; reduce to one value per member
        return params["lambda_l1"] * ctx.saliency.abs().mean(dim=(1, 2))
