"""The workload plugin interface: the whole contract in one file.

What it is: the base class a workload subclasses (a named task: its data, its
model family and the spec values it changes from the protocol's), with the
rules it must follow written beside the signatures.
What it is not: discovery (``sscbench.registry``) or training (``sscbench.trainer``
trains any workload's models as one stack).

A workload is registered under the entry-point group ``sscbench.workloads`` in
its distribution's ``pyproject.toml``; the entry point names the class:

    [project.entry-points."sscbench.workloads"]
    my-task = "my_package.module:MyTask"

sscbench's own workloads (``mnist1d-mlp``, the default, and its relatives) are
registered the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from torch import nn

from sscbench.data import Dataset
from sscbench.spec import DataSpec

DEFAULT = "mnist1d-mlp"


class NoArgs(BaseModel):
    """The arguments of a workload that has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Shape:
    """What a model of the workload takes and gives: one sample's input shape and the class count."""

    input: tuple[int, ...]
    classes: int


class Workload(ABC):
    """Base class of every workload.

    Rules:
    - ``name`` equals the entry-point name; ``description`` is one line.
    - ``Args`` is a pydantic model of the workload's own arguments (model
      widths, generation settings), every field with a default and a
      description. The spec's ``[workload] args`` table fills it; the validated
      arguments are recorded in every results file and in study names.
    - ``data`` generates or reads its splits locally (never from the network)
      and caches what is expensive (``sscbench.data.cached_arrays``). It is
      deterministic in ``data`` (the spec's ``[data]`` section): ``data.seed``
      is the draw that ``sscbench compare`` re-draws per replicate, and
      ``data.validation_size`` the validation split's size.
    - ``model`` builds ONE ordinary ``torch.nn.Module`` taking inputs
      [B, *shape.input] to logits [B, shape.classes], initialised from torch's
      global RNG only. The harness calls it after ``torch.manual_seed(s)`` for
      member s, so a member equals the module a user builds after that call.
      Samples must not interact (no batch statistics, no BatchNorm in training
      mode): every sample's logits depend on that sample alone. Buffers are
      held constant.
    - ``defaults`` holds spec values this workload changes from the protocol's,
      as a nested mapping like a TOML file (``{"evaluate": {"epochs": 40}}``);
      the spec file and command-line options override them.
    - The workload is constructed with no arguments and keeps no state.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]] = NoArgs
    defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: What a new ``data.seed`` does to the data, in words for ``compare``'s records: generated data is
    #: drawn again; a fixed archive can only be resampled (then ``resampled`` is True; say how).
    replicate_data: ClassVar[str] = "data.seed + r (the data drawn again: new train, validation and test sets)"
    resampled: ClassVar[bool] = False

    def available(self) -> str | None:
        """None when the workload can load its data here, else why not and how to fix it, in one line.

        Override it when the data comes from an optional package; ``sscbench workloads`` shows the
        line, and any command asked to run the workload refuses with it before any work.
        """
        return None

    @abstractmethod
    def shape(self, args: BaseModel, data: DataSpec) -> Shape:
        """The input shape of one sample and the class count, without generating any data."""

    @abstractmethod
    def data(self, args: BaseModel, data: DataSpec) -> Dataset:
        """Train, validation and test splits: inputs [N, *shape.input] float32, labels [N] int64."""

    @abstractmethod
    def model(self, args: BaseModel, shape: Shape) -> nn.Module:
        """One member's model, drawn from torch's global RNG (seeded by the harness)."""

    # -- helpers the harness uses; workloads do not override these -----------

    @classmethod
    def parse_args(cls, values: Mapping[str, Any]) -> BaseModel:
        return cls.Args.model_validate(dict(values))
