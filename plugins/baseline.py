"""``baseline``: plain AdamW, no regularization term.

Tuning searches only the harness's lr and weight_decay.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sscbench.regularizer import BatchContext, Regularizer


class Baseline(Regularizer):
    name = "baseline"
    description = "Plain AdamW: cross-entropy only, no regularization term."

    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return ctx.logits.new_zeros(ctx.logits.shape[0])

    def is_inactive(self, params: Mapping[str, torch.Tensor]) -> bool:
        return True
