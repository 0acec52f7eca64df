"""Plain reference implementations of the same training work, for the benchmark only.

``plain``: one model at a time, ``nn.Sequential`` + ``torch.optim.AdamW``,
index-sliced batches from tensors, the saliency from one
``torch.autograd.grad(..., create_graph=True)``.
``jacrev``: the same loop computing the saliency the seed's way, with
``torch.func.vmap(jacrev(...))`` per sample (a full Jacobian, C backward passes).
Both use PROTOCOL.md's SSC term written class by class, as a plain script would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap


def make_mlp(widths: list[int], seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def ssc_term(g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    spectrum = torch.fft.rfft(g, dim=-1).abs()
    spectrum = spectrum / (spectrum.norm(dim=-1, keepdim=True) + 1e-8)
    per_class = [spectrum[y == c].var(0).mean() for c in torch.unique(y) if (y == c).sum() >= 2]
    return torch.stack(per_class).mean() if per_class else spectrum.sum() * 0


def saliency_autograd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    logits = model(x)
    (g,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x, create_graph=True)
    return logits, g


def saliency_jacrev(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    params = dict(model.named_parameters())

    def single(p, xi):
        return functional_call(model, p, (xi[None],))[0]

    jac = vmap(jacrev(single, argnums=1), in_dims=(None, 0))(params, x)  # [B, C, D]
    return model(x), jac[torch.arange(len(y), device=y.device), y]


def train_one(x: torch.Tensor, y: torch.Tensor, widths: list[int], seed: int, lr: float, wd: float,
              lambda_ssc: float, epochs: int, batch_size: int, saliency: str) -> nn.Module:
    model = make_mlp(widths, seed).to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    gen = torch.Generator().manual_seed(seed)
    compute = saliency_autograd if saliency == "plain" else saliency_jacrev
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen).to(x.device)
        for lo in range(0, len(y), batch_size):
            idx = perm[lo:lo + batch_size]
            xb, yb = x[idx], y[idx]
            if lambda_ssc > 0:
                logits, g = compute(model, xb, yb)
                loss = F.cross_entropy(logits, yb) + lambda_ssc * ssc_term(g, yb)
            else:
                loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model
