"""A run's task: the spec's workload resolved to its plugin, validated arguments and data.

What it is: the one place that turns ``[workload]`` into something to train on:
the workload plugin (``registry.load_workload``), its ``Args`` validated, the
sample shape, the data (checked against that shape), the architecture the
trainer stacks, and the refusal of a regularizer that cannot work on it.
What it is not: the workload interface (``sscbench.workload``) or training.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from sscbench import registry
from sscbench.data import Dataset
from sscbench.regularizer import Regularizer
from sscbench.spec import DataSpec, RunSpec, SpecError, format_validation
from sscbench.stack import Architecture
from sscbench.workload import Shape, Workload


class WorkloadError(registry.PluginError):
    """A workload that cannot be used: bad arguments, data of the wrong shape, an incompatible plugin."""


@dataclass(frozen=True)
class Task:
    workload: Workload
    args: BaseModel
    data_spec: DataSpec

    @property
    def name(self) -> str:
        return self.workload.name

    @property
    def shape(self) -> Shape:
        return self.workload.shape(self.args, self.data_spec)

    def dataset(self) -> Dataset:
        """The workload's splits, checked against its declared shape and class count."""
        dataset = self.workload.data(self.args, self.data_spec)
        shape = self.shape
        for split_name, split in (("train", dataset.train), ("validation", dataset.validation),
                                  ("test", dataset.test)):
            if tuple(split.x.shape[1:]) != shape.input or split.x.shape[0] != split.y.shape[0]:
                raise WorkloadError(f"workload '{self.name}': its {split_name} split has inputs "
                                    f"{list(split.x.shape)} and labels {list(split.y.shape)}, but it declares "
                                    f"samples of shape {list(shape.input)}")
        if dataset.num_classes > shape.classes:
            raise WorkloadError(f"workload '{self.name}': its labels go up to {dataset.num_classes - 1}, but it "
                                f"declares {shape.classes} classes")
        return dataset

    def architecture(self) -> Architecture:
        shape = self.shape
        return Architecture(lambda: self.workload.model(self.args, shape), shape.input)

    def refuse_incompatible(self, plugin: Regularizer) -> None:
        """One line and no training when ``plugin`` cannot work on this workload's inputs."""
        reason = plugin.accepts(self.shape)
        if reason is not None:
            raise WorkloadError(f"regularizer '{plugin.name}' cannot run on workload '{self.name}': {reason}")


def parse_args(workload: Workload, values: Mapping[str, Any]) -> BaseModel:
    try:
        return workload.parse_args(values)
    except ValidationError as err:
        raise SpecError(format_validation(err, f"the arguments of workload '{workload.name}'",
                                          ("workload", "args"))) from None


def resolve(spec: RunSpec) -> Task:
    """The spec's task; an unknown workload or bad arguments are refused with one clear message."""
    workload = registry.load_workload(spec.workload.name)
    return Task(workload, parse_args(workload, spec.workload.args), spec.data)


def args_dict(args: BaseModel) -> dict[str, Any]:
    return json.loads(args.model_dump_json())


def normalise(spec: RunSpec) -> RunSpec:
    """The spec with every workload argument written out (defaults filled), as results record it."""
    task = resolve(spec)
    full = args_dict(task.args)
    if spec.workload.args == full:
        return spec
    return spec.model_copy(update={"workload": spec.workload.model_copy(update={"args": full})})


def prepare(spec: RunSpec, regularizers: list[str]) -> RunSpec:
    """The normalised spec, after refusing (one line, nothing trained) any plugin the workload cannot take."""
    spec = normalise(spec)
    resolved = resolve(spec)
    for name in dict.fromkeys(regularizers):
        resolved.refuse_incompatible(registry.load(name))
    return spec


def spec_defaults(name: str) -> Mapping[str, Any]:
    """The spec values workload ``name`` changes from the protocol's (beneath the spec file)."""
    return registry.load_workload(name).defaults


def key(spec: RunSpec) -> str:
    """The workload and its complete arguments as one string, for study names and stored work."""
    task = resolve(spec)
    return json.dumps({"name": task.name, "args": args_dict(task.args)}, sort_keys=True)
