"""The regularizer plugin interface: the whole contract in one file.

What it is: the base class a plugin subclasses, the batch context it receives,
and the rules it must follow (written beside the signatures).
What it is not: discovery (see ``sscbench.registry``) or training.

A plugin is registered under the entry-point group ``sscbench.regularizers``
in its distribution's ``pyproject.toml``; the entry point names the class:

    [project.entry-points."sscbench.regularizers"]
    mine = "my_package.module:MyRegularizer"

sscbench's own built-ins (``baseline``, ``ssc``) are registered the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from sscbench.saliency import target_saliency
from sscbench.seeding import STREAM_PLUGIN, keyed_normal
from sscbench.spec import SearchRange
from sscbench.workload import Shape

#: Optimizer hyperparameters the harness owns; a plugin must not declare these.
OPTIMIZER_PARAMS = ("lr", "weight_decay")


class NoParams(BaseModel):
    """The hyperparameters of a plugin that has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class BatchContext:
    """One training step of a whole stack of S members, as a plugin sees it.

    Shapes: ``inputs`` [S, B, *input] (requires grad; the workload's sample shape, [S, B, D]
    for mnist1d), ``labels`` [S, B] int64,
    ``logits`` [S, B, C]; ``seeds`` are the members' seeds (a sequence or an
    int64 tensor [S]), ``step`` the optimizer step (both only for ``randn``).
    Index s along the first axis is member s; members never interact.
    Plugins must not modify these tensors in place.
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        seeds: Sequence[int] | torch.Tensor | None = None,
        step: int = 0,
    ) -> None:
        self.inputs = inputs
        self.labels = labels
        self.logits = logits
        self.seeds = torch.as_tensor(seeds if seeds is not None else range(inputs.shape[0]), dtype=torch.int64)
        self.step = step
        self._saliency: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[-1])

    @property
    def saliency(self) -> torch.Tensor:
        """g = d z_y / d x for every sample, [S, B, *input], differentiable w.r.t. the weights.

        Computed on first access with one backward of sum(z_y) (samples do
        not interact in any workload's model), with create_graph=True, then shared by
        every caller in the same step.
        """
        if self._saliency is None:
            self._saliency = target_saliency(self.logits, self.inputs, self.labels, create_graph=True)
        return self._saliency

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal draws [S, *shape] for plugins that need randomness.

        Member s's draw depends only on its own seed and the step (never on
        the stack around it or on global RNG state), and the same numbers come
        on every device. Drawn for the whole stack at once
        (``sscbench.seeding.keyed_normal``). Calls within one step restart the
        stream: two calls with the same shape return the same draws, so draw
        everything a step needs in one call.
        """
        draws = keyed_normal(self.seeds, STREAM_PLUGIN, self.step, shape)
        return draws.to(self.inputs.device, self.inputs.dtype)


class Regularizer(ABC):
    """Base class of every regularizer plugin.

    Rules:
    - ``name`` equals the entry-point name; ``description`` is one line.
    - ``Params`` is a pydantic model of the plugin's own hyperparameters, every
      field a float with a default; it must not declare ``lr`` or
      ``weight_decay`` (the harness tunes those for every plugin).
    - ``search_space`` maps some or all ``Params`` fields to a ``SearchRange``;
      tuning samples exactly these (plus lr and weight_decay).
    - ``penalty`` must be a pure function of its arguments: no global state,
      no global RNG, no printing, no in-place changes to the context.
    - The plugin is constructed with no arguments.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams
    search_space: ClassVar[Mapping[str, SearchRange]] = {}
    #: The hyperparameter that scales the whole term, if there is one: where it is
    #: 0 for every member, ``is_inactive`` says so and the trainer skips the term.
    weight: ClassVar[str | None] = None
    #: The rank of one sample's input the plugin needs (1: 1-D signals, such as SSC's rfft
    #: along the last axis), or None when it works on any input shape. A workload whose
    #: inputs have another rank is refused before any training.
    input_rank: ClassVar[int | None] = None

    @abstractmethod
    def penalty(self, ctx: BatchContext, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The loss term added to the cross-entropy, one value per member: shape [S].

        ``params`` holds each ``Params`` field as a float tensor of shape [S]
        (member s's value at index s), on the stack's device. The returned
        value already includes any weight (such as lambda); member s's value
        must depend only on member s's slice of the context, be finite for
        finite inputs, and be differentiable w.r.t. the weights. A plugin with
        no term returns zeros.
        """

    def is_inactive(self, params: Mapping[str, torch.Tensor]) -> bool:
        """True when the term is zero for every member (lets the trainer skip it).

        The default answers from ``weight``: True when that hyperparameter is 0
        for every member; never, for a plugin that declares no weight.
        """
        return self.weight is not None and bool((params[self.weight] == 0).all())

    def accepts(self, shape: Shape) -> str | None:
        """None when the plugin works on a workload's inputs, else why not (one line).

        The default answers from ``input_rank``; override it for other needs.
        """
        if self.input_rank is None or len(shape.input) == self.input_rank:
            return None
        return (f"it needs inputs of rank {self.input_rank} (one sample of shape [D] for rank 1), "
                f"and this workload's samples have shape {list(shape.input)}")

    # -- helpers the harness uses; plugins do not override these ------------

    @classmethod
    def defaults(cls) -> dict[str, float]:
        return {k: float(v) for k, v in cls.Params().model_dump().items()}

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(cls.Params.model_fields)
