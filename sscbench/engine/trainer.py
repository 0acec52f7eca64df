"""The one shared trainer: a stack of models of any workload, each member its own run.

What it is: the only loop over batches in sscbench. It trains S members at once
(per member: seed, lr, weight decay, regularizer hyperparameters), with AdamW
semantics identical to ``torch.optim.AdamW``, and records per member and epoch
the training loss, the regularizer term and the accuracy on each evaluation set.
What it is not: aware of any particular regularizer; it calls the plugin's
``penalty`` on a ``BatchContext`` and adds the result to the cross-entropy.

Members never interact: the stack's loss is the sum of the members' losses, so
each member's gradient is that of its own loss. A member whose loss becomes
non-finite is marked diverged and stops updating; the others go on unaffected.
Because of that, a stack can be cut into sub-stacks without changing what any
member does: for memory (consecutive sub-stacks) and for the cores (sub-stacks
trained at the same time in threads, each with its share of torch's intra-op
threads; torch releases the GIL inside its kernels).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from sscbench.data import Split
from sscbench.engine.stack import Architecture, Stacked, as_architecture, concat, mlp, subset
from sscbench.regularizer import BatchContext, Regularizer
from sscbench.seeding import STREAM_BATCHES, stream_seed
from sscbench.spec import TrainSpec


@dataclass(frozen=True)
class Member:
    """One model in a stack: its seed and complete hyperparameters."""

    seed: int
    lr: float
    weight_decay: float
    params: Mapping[str, float] = field(default_factory=dict)


@dataclass
class History:
    """What training recorded; arrays are [S, epochs], NaN once a member has diverged."""

    train_loss: np.ndarray
    reg_term: np.ndarray
    accuracy: dict[str, np.ndarray]
    diverged_at: list[int | None]  # epoch (0-based) in which a member diverged
    steps: int
    model: Stacked
    pruned_at: list[int | None] = field(default_factory=list)  # epoch after which a member was stopped
    member_epochs: list[int] = field(default_factory=list)  # epochs each member trained (its compute)


class DeviceError(RuntimeError):
    """A device that was asked for but is not there."""


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device '{name}' was asked for but CUDA is not available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"device '{name}' was asked for but only {torch.cuda.device_count()} GPU(s) exist")
    return device


class _AdamW:
    """``torch.optim.AdamW`` (non-amsgrad, non-maximize) on a flat [S, P] parameter buffer.

    lr and weight decay are per member ([S]); ``active`` [S] masks frozen members.
    The update is the same arithmetic as torch's, arranged as a few in-place
    passes over one buffer (the per-tensor, broadcasting form was ten times slower).
    """

    def __init__(self, flat: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor,
                 betas: tuple[float, float], eps: float) -> None:
        self.flat = flat
        self.lr, self.decay = lr.view(-1, 1), (1 - lr * wd).view(-1, 1)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros_like(flat)
        self.exp_avg_sq = torch.zeros_like(flat)
        self.step_count = 0

    def subset(self, flat: torch.Tensor, rows: torch.Tensor) -> _AdamW:
        """The optimizer of a compacted stack: the kept members' rows of every per-member state."""
        kept = object.__new__(_AdamW)
        kept.flat, kept.lr, kept.decay = flat, self.lr[rows], self.decay[rows]
        kept.beta1, kept.beta2, kept.eps, kept.step_count = self.beta1, self.beta2, self.eps, self.step_count
        kept.exp_avg, kept.exp_avg_sq = self.exp_avg[rows], self.exp_avg_sq[rows]
        return kept

    @torch.no_grad()
    def step(self, grad: torch.Tensor, active: torch.Tensor | None) -> None:
        self.step_count += 1
        bc1 = 1 - self.beta1 ** self.step_count
        bc2_sqrt = (1 - self.beta2 ** self.step_count) ** 0.5
        m, v = self.exp_avg, self.exp_avg_sq
        m.lerp_(grad, 1 - self.beta1)
        v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        # p <- p (1 - lr wd) - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
        denom = v.sqrt().div_(bc2_sqrt).add_(self.eps).div_(self.lr / bc1)
        if active is None:
            self.flat.mul_(self.decay).addcdiv_(m, denom, value=-1)
        else:
            new = (self.flat * self.decay).addcdiv_(m, denom, value=-1)
            self.flat.copy_(torch.where(active.view(-1, 1), new, self.flat))


def epoch_order(seeds: Sequence[int], epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """Per-member permutation of the n training samples for one epoch: [S, n]."""
    perms = []
    cache: dict[int, torch.Tensor] = {}
    for seed in seeds:
        if seed not in cache:  # members sharing a seed share their order
            gen = torch.Generator().manual_seed(stream_seed(seed, STREAM_BATCHES, epoch))
            cache[seed] = torch.randperm(n, generator=gen)
        perms.append(cache[seed])
    return torch.stack(perms).to(device)


def member_hyperparameters(members: Sequence[Member], regularizer: Regularizer,
                           device: torch.device | str) -> dict[str, torch.Tensor]:
    """The plugin's hyperparameters as [S] float tensors, the form ``penalty`` receives."""
    return {k: torch.tensor([float(m.params[k]) for m in members], dtype=torch.float32, device=device)
            for k in regularizer.param_names()}


@torch.no_grad()
def accuracy(model: Stacked, split: Split, chunk: int = 4096) -> torch.Tensor:
    """Per-member accuracy on a split shared by all members: [S]."""
    correct = torch.zeros(model.size, device=split.x.device)
    for start in range(0, len(split), chunk):
        x, y = split.x[start:start + chunk], split.y[start:start + chunk]
        correct += (model(x).argmax(-1) == y).sum(-1)
    return correct / len(split)


MEMORY_BUDGET_FRACTION = 0.5  # of the memory free when a stack starts


def free_memory_bytes(device: torch.device) -> int:
    """Memory free now: the GPU's for CUDA, physical memory available to the OS otherwise."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not every OS offers these
        return 8 << 30


def bytes_per_member(widths: Sequence[int], batch_size: int) -> int:
    """A generous estimate of one MLP member's training memory (``Architecture.bytes_per_member``)."""
    return mlp(widths).bytes_per_member(batch_size)


def stack_capacity(model: Architecture | Sequence[int], batch_size: int, device: torch.device) -> int:
    """How many members one stack may hold on this device right now (at least 1)."""
    budget = MEMORY_BUDGET_FRACTION * free_memory_bytes(device)
    return max(1, int(budget // as_architecture(model).bytes_per_member(batch_size)))


#: Copies of a pass's activations a saliency pass holds at once (outputs, the graph, its gradients).
SALIENCY_COPIES = 16


def diagnostic_chunk(model: Architecture | Sequence[int], members: int, device: torch.device,
                     most: int = 4096) -> int:
    """Samples per diagnostic pass over a stack of ``members``: at most ``most``, fewer where a saliency
    pass over that many would not fit the memory budget (long series, wide models, many members)."""
    budget = MEMORY_BUDGET_FRACTION * free_memory_bytes(device)
    per_sample = members * SALIENCY_COPIES * as_architecture(model).activation_bytes_per_sample()
    return max(1, min(most, int(budget // per_sample)))


def worker_count(spec: TrainSpec, members: int) -> int:
    """Sub-stacks trained at once: ``spec.workers``, never more than there are members."""
    return min(spec.workers, members)


def split_evenly(count: int, parts: int) -> list[range]:
    """``parts`` consecutive ranges covering range(count), sizes differing by at most one, larger first."""
    base, extra = divmod(count, parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(bounds[-1] + base + (k < extra))
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _concat(parts: list[History]) -> History:
    if len(parts) == 1:
        return parts[0]
    return History(
        train_loss=np.concatenate([h.train_loss for h in parts]),
        reg_term=np.concatenate([h.reg_term for h in parts]),
        accuracy={k: np.concatenate([h.accuracy[k] for h in parts]) for k in parts[0].accuracy},
        diverged_at=[d for h in parts for d in h.diverged_at],
        steps=sum(h.steps for h in parts),
        model=concat([h.model for h in parts]),
        pruned_at=[p for h in parts for p in h.pruned_at],
        member_epochs=[e for h in parts for e in h.member_epochs],
    )


def stack_progress(size: int, report: Callable[[int, float], None]) -> Callable[[int, Stacked, int], None]:
    """An ``on_epoch`` hook calling ``report(epoch, share)`` for every sub-stack epoch.

    ``share`` is the sub-stack's part of the whole stack (its members / ``size``),
    so the shares of one epoch add up to 1 however the stack was cut (for memory
    or for workers), and progress moves while any sub-stack trains.
    """

    def hook(epoch: int, model: Stacked, first: int) -> None:
        report(epoch, model.size / size)

    return hook


#: ``prune(epoch, members, values)``: after an epoch, the indices (into the members given to
#: ``train_stack``) of the members to stop, given the still-training ``members`` and their
#: accuracy ``values`` on the ``prune_on`` evaluation set that epoch.
Prune = Callable[[int, list[int], np.ndarray], Collection[int]]


class _Cancelled(Exception):
    """A sub-stack stopped because another one failed or the user interrupted."""


def train_stack(
    train: Split,
    model: Architecture | Sequence[int],
    members: Sequence[Member],
    regularizer: Regularizer,
    epochs: int,
    spec: TrainSpec,
    eval_sets: Mapping[str, Split] | None = None,
    on_epoch: Callable[[int, Stacked, int], None] | None = None,
    capacity: int | None = None,
    prune: Prune | None = None,
    prune_on: str = "validation",
) -> History:
    """Train every member of ``model`` (an architecture, or MLP widths) for ``epochs`` epochs.

    With ``prune``, members it names after an epoch stop there (``pruned_at``) like
    diverged ones, and the stack is compacted at once: stopped members leave it
    (parameters, optimizer state, hyperparameters, seeds), so they cost no more
    compute; the survivors go on as before (to float tolerance: the batched
    kernels see fewer members). Without it nothing is ever compacted.

    Members beyond what memory allows (``stack_capacity``, or ``capacity``) are
    trained as consecutive stacks, and each of those is cut into
    ``worker_count`` sub-stacks trained at the same time; members never
    interact, so neither cut changes what a member does. ``on_epoch(epoch,
    model, first)`` runs after each epoch's evaluation of each sub-stack
    (progress, diagnostics) with that sub-stack and the index of its first
    member in ``members``; calls never overlap, and it must not change the model.
    """
    if not members:
        raise ValueError("a stack needs at least one member")
    device = resolve_device(spec.device)
    arch = as_architecture(model)
    limit = capacity or stack_capacity(arch, spec.batch_size, device)
    args = (train, arch, regularizer, epochs, spec, eval_sets, on_epoch, prune, prune_on)
    return _concat([_train_concurrently(members[first:first + limit], first, *args)
                    for first in range(0, len(members), limit)])


def _train_concurrently(members: Sequence[Member], first: int, train: Split,
                        arch: Architecture, regularizer: Regularizer, epochs: int, spec: TrainSpec,
                        eval_sets: Mapping[str, Split] | None,
                        on_epoch: Callable[[int, Stacked, int], None] | None,
                        prune: Prune | None = None, prune_on: str = "validation") -> History:
    workers = worker_count(spec, len(members))
    if workers == 1:
        return _train_one_stack(train, arch, members, regularizer, epochs, spec, eval_sets, on_epoch, first,
                                None, prune, prune_on)
    lock, stop = threading.Lock(), threading.Event()

    def hook(epoch: int, model: Stacked, start: int) -> None:
        with lock:
            on_epoch(epoch, model, start)  # type: ignore[misc]

    def locked_prune(epoch: int, indices: list[int], values: np.ndarray) -> Collection[int]:
        with lock:
            return prune(epoch, indices, values)  # type: ignore[misc]

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))  # process-wide; restored below
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sscbench-stack") as pool:
            futures = [pool.submit(_train_one_stack, train, arch, members[part.start:part.stop], regularizer,
                                   epochs, spec, eval_sets, hook if on_epoch else None, first + part.start, stop,
                                   locked_prune if prune else None, prune_on)
                       for part in split_evenly(len(members), workers)]
            try:
                wait(futures, return_when=FIRST_EXCEPTION)
            finally:
                stop.set()  # on an error or Ctrl-C the other sub-stacks stop at their next step
            errors = [f.exception() for f in futures if f.exception() is not None]
            real = [e for e in errors if not isinstance(e, _Cancelled)]
            if errors:
                raise (real or errors)[0]
            return _concat([f.result() for f in futures])
    finally:
        torch.set_num_threads(threads)


def _train_one_stack(
    train: Split,
    arch: Architecture,
    members: Sequence[Member],
    regularizer: Regularizer,
    epochs: int,
    spec: TrainSpec,
    eval_sets: Mapping[str, Split] | None = None,
    on_epoch: Callable[[int, Stacked, int], None] | None = None,
    first: int = 0,
    stop: threading.Event | None = None,
    prune: Prune | None = None,
    prune_on: str = "validation",
) -> History:
    device = resolve_device(spec.device)
    train = train.to(device)
    eval_sets = {k: v.to(device) for k, v in (eval_sets or {}).items()}
    seeds = [m.seed for m in members]
    seed_tensor = torch.tensor(seeds, dtype=torch.int64)  # for BatchContext.randn, built once
    S, n, bs = len(members), len(train), spec.batch_size

    full = model = arch.stack(seeds, device).requires_grad_(True)
    params = model.parameters()
    as_tensor = lambda vals: torch.tensor(vals, dtype=torch.float32, device=device)  # noqa: E731
    opt = _AdamW(model.flat, as_tensor([m.lr for m in members]), as_tensor([m.weight_decay for m in members]),
                 (spec.beta1, spec.beta2), spec.eps)
    hp = member_hyperparameters(members, regularizer, device)
    term_off = regularizer.is_inactive(hp)

    live = list(range(S))  # which members the current stack's rows are (all, until it is compacted)
    active = torch.ones(S, dtype=torch.bool, device=device)
    all_active = True
    diverged_at: list[int | None] = [None] * S
    pruned_at: list[int | None] = [None] * S
    member_epochs = [0] * S
    loss_hist = np.full((S, epochs), np.nan)
    term_hist = np.full((S, epochs), np.nan)
    acc_hist = {k: np.full((S, epochs), np.nan) for k in eval_sets}
    steps = 0

    for epoch in range(epochs):
        if not live:
            break  # every member stopped: nothing left to train
        size = len(live)
        for k in torch.nonzero(active).flatten().tolist():
            member_epochs[live[k]] += 1
        order = epoch_order(seeds, epoch, n, device)
        loss_sum = torch.zeros(size, device=device)
        term_sum = torch.zeros(size, device=device)
        for lo in range(0, n, bs):
            if stop is not None and stop.is_set():
                raise _Cancelled
            idx = order[:, lo:lo + bs]
            x = train.x[idx].requires_grad_(True)  # [S, B, *input]: gathered for the whole stack at once
            y = train.y[idx]
            logits = model(x)
            ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)
            if term_off:
                term = torch.zeros_like(ce)
            else:
                ctx = BatchContext(x, y, logits, seeds=seed_tensor, step=steps)
                term = regularizer.penalty(ctx, hp)
            loss = ce + term
            finite = torch.isfinite(loss)
            newly = active & ~finite
            if bool(newly.any()):
                for k in torch.nonzero(newly).flatten().tolist():
                    diverged_at[live[k]] = epoch
                active = active & finite
                all_active = False
            total = torch.where(active, loss, torch.zeros_like(loss)).sum()
            grads = torch.autograd.grad(total, params)
            opt.step(model.flat_grad(grads), None if all_active else active)
            loss_sum += loss.detach() * y.shape[1]
            term_sum += term.detach() * y.shape[1]
            steps += 1
        alive = active.cpu().numpy()
        rows = np.array(live)[alive]
        loss_hist[rows, epoch] = (loss_sum / n).cpu().numpy()[alive]
        term_hist[rows, epoch] = (term_sum / n).cpu().numpy()[alive]
        for name, split in eval_sets.items():
            acc_hist[name][rows, epoch] = accuracy(model, split).cpu().numpy()[alive]
        if on_epoch is not None:
            on_epoch(epoch, model, first)
        if prune is None or epoch == epochs - 1:
            continue
        stopped = set(prune(epoch, [first + r for r in rows.tolist()], acc_hist[prune_on][rows, epoch]))
        for k, r in enumerate(live):
            if bool(active[k]) and first + r in stopped:
                pruned_at[r] = epoch
                active[k] = False
        kept = torch.nonzero(active).flatten()
        if len(kept) < size:  # compact: stopped and diverged members leave the stack
            with torch.no_grad():
                gone = torch.nonzero(~active).flatten()
                full.flat[torch.tensor(live, device=device)[gone]] = model.flat[gone]
            model = subset(model, kept.tolist()).requires_grad_(True)
            params = model.parameters()
            opt = opt.subset(model.flat, kept)
            hp = {k: v[kept] for k, v in hp.items()}
            live = [live[k] for k in kept.tolist()]
            seeds = [seeds[k] for k in kept.tolist()]
            seed_tensor = seed_tensor[kept.cpu()]
            active = torch.ones(len(live), dtype=torch.bool, device=device)
            all_active = True

    if model is not full:
        with torch.no_grad():
            full.flat[torch.tensor(live, dtype=torch.int64, device=device)] = model.flat
    model = full
    model.requires_grad_(False)
    return History(loss_hist, term_hist, acc_hist, diverged_at, steps, model, pruned_at, member_epochs)
