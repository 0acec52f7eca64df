"""``spatial``: SSC without the Fourier transform (an ablation of SSC).

    S_i = g_i / (||g_i||_2 + 1e-8)
    term = lambda_spatial * mean over classes c with n_c >= 2 of mean_d Var_{i: y_i = c}(S_{i,d})

the class-wise variance of the unit-normalised saliency maps themselves, with
SSC's conventions (unbiased variance, singleton classes skipped). If it does
as well as SSC, the spectrum is not what matters, only consistency. Source:
this harness, as the ablation a reviewer of the SSC claim asks for. Search
range of lambda_spatial: [1e-4, 1], log-uniform, as SSC's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.saliency import classwise_variance, unit_normalize
from sscbench.spec import SearchRange


class SpatialParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_spatial: float = Field(1e-3, ge=0, description="Weight of the spatial consistency term.")


class Spatial(Regularizer):
    name = "spatial"
    description = "SSC without the FFT: class-wise variance of unit-normalised input-gradient maps."
    Params = SpatialParams
    search_space = {"lambda_spatial": SearchRange(low=1e-4, high=1.0, log=True)}
    weight = "lambda_spatial"

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        maps = unit_normalize(ctx.saliency.flatten(2))  # any input shape, one map per sample
        return params["lambda_spatial"] * classwise_variance(maps, ctx.labels, ctx.num_classes)
