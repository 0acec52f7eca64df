"""Plain reference implementations of the same training work, for the benchmark only.

``plain``: one model at a time, ``nn.Sequential`` + ``torch.optim.AdamW``,
index-sliced batches from tensors, the saliency from one
``torch.autograd.grad(..., create_graph=True)``.
``jacrev``: the same loop computing the saliency the seed's way, with
``torch.func.vmap(jacrev(...))`` per sample (a full Jacobian, C backward passes).
Both use PROTOCOL.md's SSC term written class by class, as a plain script would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap


def make_mlp(widths: list[int], seed: int) -> nn.Sequential:
    """The protocol's MLP (``nn.Sequential`` of ``Linear`` and ``ReLU``) drawn after ``torch.manual_seed(seed)``."""
    from sscbench.engine.stack import mlp_module

    torch.manual_seed(seed)
    return mlp_module(widths)


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


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def train_one(x: torch.Tensor, y: torch.Tensor, widths: list[int], seed: int, lr: float, wd: float,
              lambda_ssc: float, epochs: int, batch_size: int, saliency: str,
              held_out: tuple[torch.Tensor, torch.Tensor] | None = None,
              make_model: Callable[[int], nn.Module] | None = None) -> tuple[nn.Module, list[float]]:
    """Train one model (the MLP of ``widths``, or ``make_model(seed)``); returns it and its accuracy on
    ``held_out`` after every epoch (if given)."""
    model = (make_model(seed) if make_model is not None else make_mlp(widths, seed)).to(x.device)
    accuracies: list[float] = []
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
        if held_out is not None:
            accuracies.append(accuracy(model, *held_out))
    return model, accuracies


def plain_protocol(data, trials: int, tune_epochs: int, seeds: int, epochs: int) -> dict[str, dict]:
    """PROTOCOL.md as a plain script would run it: per method, ``study.optimize`` over one model at a
    time (30 trials of 15 epochs, objective = best validation accuracy), then the best
    hyperparameters over seeds 0..N-1 at 30 epochs, test accuracy after the last epoch."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    widths = [data.train.x.shape[1], 256, 256, data.num_classes]
    train, val, test = (data.train.x, data.train.y), (data.validation.x, data.validation.y), (data.test.x, data.test.y)
    out = {}
    for method in ("baseline", "ssc"):
        def objective(trial, method=method):
            lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
            wd = trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True)
            lam = trial.suggest_float("lambda_ssc", 1e-4, 1.0, log=True) if method == "ssc" else 0.0
            _, accs = train_one(*train, widths, 0, lr, wd, lam, tune_epochs, 128, "plain", held_out=val)
            return max(accs)

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(objective, n_trials=trials)
        best = study.best_params
        test_acc = [train_one(*train, widths, s, best["lr"], best["weight_decay"], best.get("lambda_ssc", 0.0),
                              epochs, 128, "plain", held_out=test)[1][-1] for s in range(seeds)]
        out[method] = {"best_validation": study.best_value, "best_params": best, "test_accuracy": test_acc}
    return out
