"""Stacks of S models of any architecture, trained as one: what the trainer holds.

What it is: ``Architecture`` (how one member is built: a workload's model,
drawn after ``torch.manual_seed(seed)``) and ``StackedModule``, S copies of
that module whose parameters are rows of one flat [S, P] buffer, evaluated in
one batched pass with ``torch.func.functional_call`` under ``torch.vmap``.
A plain MLP (``nn.Sequential`` of ``Linear`` and ``ReLU``) is held as a
``StackedMLP`` instead, the specialised form the default workload has always
trained with (batched matmuls; faster, and the default's results unchanged).
What it is not: training (``sscbench.trainer``) or a workload (``sscbench.workload``).

Both kinds of stack offer the same surface: ``flat``, ``size``, ``parameters()``
(views into ``flat``, leaves for autograd), ``flat_grad``, ``__call__`` on
inputs [S, B, *input] (per member) or [B, *input] (shared), ``member(i)`` and
``concat`` joins stacks. Members never interact.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn
from torch.func import functional_call

from sscbench.engine.model import StackedMLP

BYTES_PER_FLOAT = 4
_GLOBAL_RNG = threading.Lock()  # held while a member is drawn from torch's global RNG
EVAL_CHUNK = 4096  # samples per evaluation pass (trainer.accuracy)


class StackedModule:
    """Parameters of S copies of one module: ``parameters()[k]`` is [S, *shape of parameter k]."""

    def __init__(self, flat: torch.Tensor, template: nn.Module, input_rank: int,
                 buffers: dict[str, torch.Tensor] | None = None) -> None:
        self.flat = flat
        self.template = template  # on the meta device: its structure only
        self.input_rank = input_rank
        self.names = [name for name, _ in template.named_parameters()]
        self.buffers = buffers or {}
        size, offset = flat.shape[0], 0
        self._params: list[torch.Tensor] = []
        for _, p in template.named_parameters():
            self._params.append(flat[:, offset:offset + p.numel()].view(size, *p.shape))
            offset += p.numel()
        if offset != flat.shape[1]:
            raise ValueError(f"a flat buffer of {flat.shape[1]} parameters does not fit a module of {offset}")

    @classmethod
    def from_modules(cls, modules: Sequence[nn.Module], input_rank: int,
                     device: torch.device | str = "cpu") -> StackedModule:
        rows = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in modules]
        buffers = {name: torch.stack([dict(m.named_buffers())[name].detach() for m in modules]).to(device)
                   for name, _ in modules[0].named_buffers()}
        template = copy.deepcopy(modules[0]).to("meta")
        return cls(torch.stack(rows).to(device), template, input_rank, buffers)

    @property
    def size(self) -> int:
        return int(self.flat.shape[0])

    def parameters(self) -> list[torch.Tensor]:
        """The template's parameters in ``named_parameters`` order, each stacked over members."""
        return self._params

    def requires_grad_(self, flag: bool = True) -> StackedModule:
        for p in self._params:
            p.requires_grad_(flag)
        return self

    def flat_grad(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([g.reshape(self.size, -1) for g in grads], dim=1)

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
             x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, {**params, **buffers}, (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [S, B, C] for inputs [S, B, *input] (per member) or [B, *input] (shared by all)."""
        shared = x.dim() == self.input_rank + 1
        params = dict(zip(self.names, self._params, strict=True))
        return torch.vmap(self._one, in_dims=(0, 0, None if shared else 0))(params, self.buffers, x)

    __call__ = forward

    def member(self, index: int) -> list[torch.Tensor]:
        """Member ``index``'s parameters in the module's layout and order, detached."""
        return [p[index].detach().clone() for p in self._params]


Stacked = StackedMLP | StackedModule


def concat(stacks: Sequence[Stacked]) -> Stacked:
    """One stack holding the members of ``stacks`` in order (all of one architecture)."""
    if len(stacks) == 1:
        return stacks[0]
    first = stacks[0]
    flat = torch.cat([s.flat for s in stacks])
    if isinstance(first, StackedMLP):
        return StackedMLP(flat, first.widths)
    buffers = {k: torch.cat([s.buffers[k] for s in stacks]) for k in first.buffers}  # type: ignore[union-attr]
    return StackedModule(flat, first.template, first.input_rank, buffers)


def subset(stack: Stacked, rows: Sequence[int]) -> Stacked:
    """A new stack holding copies of the given members' parameters (and buffers), in that order."""
    index = torch.tensor(list(rows), dtype=torch.int64, device=stack.flat.device)
    flat = stack.flat.detach().index_select(0, index)
    if isinstance(stack, StackedMLP):
        return StackedMLP(flat, stack.widths)
    return StackedModule(flat, stack.template, stack.input_rank,
                         {k: v.index_select(0, index) for k, v in stack.buffers.items()})


def mlp_widths(module: nn.Module) -> list[int] | None:
    """The widths of a plain MLP (``Sequential`` of ``Linear`` with ``ReLU`` between, biases on), else None."""
    if type(module) is not nn.Sequential:
        return None
    layers = list(module)
    linears, relus = layers[0::2], layers[1::2]
    if not linears or not all(type(m) is nn.Linear and m.bias is not None for m in linears):
        return None
    if len(relus) != len(linears) - 1 or not all(type(m) is nn.ReLU for m in relus):
        return None
    return [linears[0].in_features] + [m.out_features for m in linears]


def _activations_per_sample(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floats every submodule outputs for one sample (measured with hooks on a meta-device pass)."""
    total = [0]

    def count(_: nn.Module, __: object, out: object) -> None:
        if isinstance(out, torch.Tensor):
            total[0] += out.numel()

    meta = copy.deepcopy(module).to("meta")
    handles = [m.register_forward_hook(count) for m in meta.modules()]
    try:
        with torch.no_grad():
            meta(torch.empty(1, *input_shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total[0]


@dataclass(frozen=True)
class Architecture:
    """How a member is built: ``make()`` after ``torch.manual_seed(seed)``, on inputs of ``input_shape``."""

    make: Callable[[], nn.Module]
    input_shape: tuple[int, ...]

    def module(self, seed: int) -> nn.Module:
        """Member ``seed``: exactly the module built after ``torch.manual_seed(seed)`` (global RNG restored).

        Builds are serialised: sub-stacks start in threads, and torch's global RNG is one per process.
        """
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.make()

    @cached_property
    def template(self) -> nn.Module:
        """Member 0, built once: the structure every member shares."""
        return self.module(0)

    @property
    def widths(self) -> list[int] | None:
        """The MLP widths when the stack takes the specialised MLP form (rank-1 inputs), else None."""
        return mlp_widths(self.template) if len(self.input_shape) == 1 else None

    def stack(self, seeds: Sequence[int], device: torch.device | str = "cpu") -> Stacked:
        modules = [self.module(s) for s in seeds]
        widths = self.widths
        if widths is not None:
            rows = [torch.cat([t for lin in m[0::2] for t in (lin.weight.detach().T.reshape(-1), lin.bias.detach())])
                    for m in modules]
            return StackedMLP(torch.stack(rows).to(device), widths)
        return StackedModule.from_modules(modules, len(self.input_shape), device)

    def activation_bytes_per_sample(self) -> int:
        """Bytes every layer outputs for one sample (an MLP's widths, another module's submodules)."""
        widths = self.widths
        per_sample = sum(widths) if widths is not None else _activations_per_sample(self.template, self.input_shape)
        return max(per_sample, math.prod(self.input_shape)) * BYTES_PER_FLOAT

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.template.parameters())

    def bytes_per_member(self, batch_size: int) -> int:
        """A generous estimate of one member's training memory.

        Parameters, gradient, their flat copy and two AdamW moments (6 x P floats),
        plus one step's activations with the saliency graph (about 12 copies of a
        batch's activations) and an evaluation chunk's. An MLP's activations per
        sample are sum(widths); another module's are what its submodules output.
        """
        widths = self.widths
        per_sample = sum(widths) if widths is not None else _activations_per_sample(self.template, self.input_shape)
        activations = (12 * batch_size + EVAL_CHUNK) * max(per_sample, math.prod(self.input_shape))
        return (6 * self.num_parameters() + activations) * BYTES_PER_FLOAT


def mlp_module(widths: Sequence[int]) -> nn.Sequential:
    """The plain MLP: ``Linear`` layers of ``widths`` with ``ReLU`` between."""
    if len(widths) < 2:
        raise ValueError(f"an MLP needs at least input and output widths, got {list(widths)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def mlp(widths: Sequence[int]) -> Architecture:
    """The architecture of a plain MLP of ``widths`` (rank-1 inputs of ``widths[0]`` features)."""
    widths = [int(w) for w in widths]
    return Architecture(lambda: mlp_module(widths), (widths[0],))


def as_architecture(model: Architecture | Sequence[int]) -> Architecture:
    """An architecture, or MLP widths taken as that MLP's architecture."""
    return model if isinstance(model, Architecture) else mlp(model)
