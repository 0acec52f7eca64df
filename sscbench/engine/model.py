"""A stack of S independent MLPs evaluated in one batched pass.

What it is: the protocol's MLP (widths D -> hidden... -> C, ReLU), with every
layer's weights held as one [S, in, out] tensor so that S members (tuning
trials, evaluation seeds) train together with batched matmuls.
What it is not: an nn.Module with hooks or an optimizer; the trainer owns updates.

Initialisation matches ``nn.Linear``'s default exactly: member s draws its
layers, in order, from a generator seeded with s, which is what
``torch.manual_seed(s)`` followed by building ``nn.Linear`` layers does. So a
member's start depends only on its own seed, not on the stack around it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def init_linear(fan_in: int, fan_out: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``nn.Linear.reset_parameters`` with an explicit generator: (weight [out, in], bias [out])."""
    weight = torch.empty(fan_out, fan_in)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    bias = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
    return weight, bias


class StackedMLP:
    """Parameters of S MLPs: ``weights[l]`` [S, in_l, out_l], ``biases[l]`` [S, out_l].

    All of a member's parameters live in one row of ``flat`` [S, P]; the
    weights and biases are views into it, so the optimizer updates the whole
    stack with a handful of passes over one buffer.
    """

    def __init__(self, flat: torch.Tensor, widths: Sequence[int]) -> None:
        self.flat = flat
        self.weights: list[torch.Tensor] = []
        self.biases: list[torch.Tensor] = []
        offset, size = 0, flat.shape[0]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            self.weights.append(flat[:, offset:offset + a * b].view(size, a, b))
            offset += a * b
            self.biases.append(flat[:, offset:offset + b])
            offset += b
        if offset != flat.shape[1]:
            raise ValueError(f"a flat buffer of {flat.shape[1]} parameters does not fit widths {list(widths)}")

    @staticmethod
    def num_parameters(widths: Sequence[int]) -> int:
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))

    @classmethod
    def init(cls, widths: Sequence[int], seeds: Sequence[int], device: torch.device | str = "cpu") -> StackedMLP:
        if len(widths) < 2:
            raise ValueError(f"an MLP needs at least input and output widths, got {list(widths)}")
        rows = []
        for seed in seeds:
            gen = torch.Generator().manual_seed(int(seed))
            parts = []
            for a, b in zip(widths[:-1], widths[1:], strict=True):
                weight, bias = init_linear(a, b, gen)
                parts += [weight.T.reshape(-1), bias]  # stored as [in, out] for x @ W
            rows.append(torch.cat(parts))
        return cls(torch.stack(rows).to(device), widths)

    @property
    def size(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def widths(self) -> list[int]:
        return [int(self.weights[0].shape[1])] + [int(w.shape[2]) for w in self.weights]

    def parameters(self) -> list[torch.Tensor]:
        """Weights and biases interleaved, layer by layer (nn.Sequential's order)."""
        return [p for pair in zip(self.weights, self.biases) for p in pair]

    def requires_grad_(self, flag: bool = True) -> StackedMLP:
        """Make the weight and bias views leaves that require grad (``flat`` itself never does)."""
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def flat_grad(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """Gradients w.r.t. ``parameters()`` laid out like ``flat``: [S, P]."""
        return torch.cat([g.reshape(self.size, -1) for g in grads], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [S, B, C] for inputs [S, B, D] (per member) or [B, D] (shared by all)."""
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            # matmul broadcasts a shared [B, D] input against [S, D, H] without copying it S times.
            h = torch.matmul(h, w) + b.unsqueeze(-2)
            if i < last:
                h = torch.relu(h)
        return h

    __call__ = forward

    def member(self, index: int) -> list[torch.Tensor]:
        """Member ``index``'s parameters in nn.Linear layout (weight [out, in], bias), detached."""
        out: list[torch.Tensor] = []
        for w, b in zip(self.weights, self.biases):
            out += [w[index].detach().T.clone(), b[index].detach().clone()]
        return out
