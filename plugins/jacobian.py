"""``jacobian``: Jacobian regularization by random projection.

    ||J_i||_F^2 ~= (C / P) * sum_p ||v_ip^T J_i||_2^2,   v_ip uniform on the unit sphere of R^C
    term = (lambda_jacobian / 2) * mean_i ||J_i||_F^2

where J_i = d z / d x_i is the full input-output Jacobian of sample i (not only
the target logit's row, as SSC and gradnorm use). Each v^T J costs one extra
backward with create_graph. Source: Hoffman, Roberts & Yaida, "Robust Learning
with Jacobian Regularization", 2019 (arXiv:1908.02729), with one projection
per step by default, as there. Search range of lambda_jacobian: [1e-5, 1e-1],
log-uniform; ``projections`` is fixed per run (not searched).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from pydantic import BaseModel, ConfigDict, Field

from sscbench.regularizer import BatchContext, Regularizer
from sscbench.spec import SearchRange


class JacobianParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lambda_jacobian: float = Field(1e-3, ge=0, description="Weight of the Frobenius-norm estimate (halved).")
    projections: int = Field(1, ge=1, le=64, description="Random projections per step (same for all members).")


class Jacobian(Regularizer):
    name = "jacobian"
    description = "Hoffman et al. 2019: random-projection estimate of the input-output Jacobian's Frobenius norm."
    Params = JacobianParams
    search_space = {"lambda_jacobian": SearchRange(low=1e-5, high=1e-1, log=True)}
    weight = "lambda_jacobian"

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        n_proj = int(params["projections"].max())
        size, batch, classes = ctx.logits.shape
        v = ctx.randn(n_proj, batch, classes)  # [S, P, B, C], member s's draws from its own seed
        v = v / v.norm(dim=-1, keepdim=True)
        frob = torch.zeros(size, batch, device=ctx.logits.device, dtype=ctx.logits.dtype)
        for p in range(n_proj):
            (vj,) = torch.autograd.grad((ctx.logits * v[:, p]).sum(), ctx.inputs, create_graph=True)
            frob = frob + vj.square().flatten(2).sum(-1)
        return params["lambda_jacobian"] / 2 * (classes / n_proj) * frob.mean(-1)
