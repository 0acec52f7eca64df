"""``labelsmooth``: label smoothing written as a loss term (a cheap, non-gradient baseline).

    term = epsilon * mean_i ( mean_k(-log p_ik) - (-log p_iy_i) )

so that cross-entropy + term = (1 - epsilon) * CE + epsilon * CE(uniform), the
smoothed cross-entropy of ``torch.nn.functional.cross_entropy(...,
label_smoothing=epsilon)``. Source: Szegedy et al., "Rethinking the Inception
Architecture for Computer Vision", CVPR 2016. Search range of epsilon:
[1e-3, 0.5], log-uniform. The term can be negative; the total loss is not.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.spec import SearchRange


class LabelSmoothParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    epsilon: float = Field(0.1, ge=0, lt=1, description="Probability mass moved to the uniform distribution.")


class LabelSmooth(Regularizer):
    name = "labelsmooth"
    description = "Label smoothing as a loss term: epsilon * (CE against uniform - CE against the label)."
    Params = LabelSmoothParams
    search_space = {"epsilon": SearchRange(low=1e-3, high=0.5, log=True)}
    weight = "epsilon"

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logp = torch.log_softmax(ctx.logits, dim=-1)
        target = logp.gather(-1, ctx.labels.unsqueeze(-1)).squeeze(-1)
        return params["epsilon"] * (target - logp.mean(-1)).mean(-1)
