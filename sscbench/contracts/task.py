"""A spec resolved once: the run it describes.

What it is: the one place that turns a spec into something to train on. ``resolve_run`` does it
at the entry of a command and gives a ``Run``: the spec with every workload argument written out,
the workload plugin and its validated ``Args`` (``Task``), the sample shape, the architecture the
trainer stacks, the regularizer plugins (each loaded once, a plugin that cannot work on the
workload refused), and the dataset of each data seed, loaded on first use and shared by every
stage after. The stages receive the ``Run``; none resolves a spec again. ``Run.with_spec`` gives
a replicate's run (other seeds, the same workload and plugins) sharing the same caches.
What it is not: the workload interface (``sscbench.workload``) or training.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel, ValidationError

from sscbench.contracts import registry
from sscbench.data import Dataset
from sscbench.engine.stack import Architecture
from sscbench.regularizer import Regularizer
from sscbench.spec import DataSpec, RunSpec, SpecError, format_validation
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
    missing = workload.available()
    if missing is not None:
        raise WorkloadError(f"workload '{workload.name}' is unavailable: {missing}")
    return Task(workload, parse_args(workload, spec.workload.args), spec.data)


def args_dict(args: BaseModel) -> dict[str, Any]:
    return json.loads(args.model_dump_json())


def normalise(spec: RunSpec) -> RunSpec:
    """The spec with every workload argument written out (defaults filled), as results record it."""
    return resolve_run(spec).spec


def spec_defaults(name: str) -> Mapping[str, Any]:
    """The spec values workload ``name`` changes from the protocol's (beneath the spec file)."""
    return registry.load_workload(name).defaults


def key(spec: RunSpec) -> str:
    """The workload and its complete arguments as one string (of a spec from elsewhere: a tuned file's)."""
    return resolve_run(spec).key


class Datasets:
    """Each data spec's dataset, loaded once and kept until forgotten (shared by threads).

    With ``limit``, only the most recently used ``limit`` datasets are kept (a worker serving the
    studies of many replicates).
    """

    def __init__(self, limit: int | None = None) -> None:
        self._cache: OrderedDict[str, Dataset] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, task: Task) -> Dataset:
        key = task.data_spec.model_dump_json()
        with self._lock:
            if key not in self._cache:
                self._cache[key] = task.dataset()
            self._cache.move_to_end(key)
            if self._limit is not None and len(self._cache) > self._limit:
                self._cache.popitem(last=False)
            return self._cache[key]

    def forget(self, data_spec: DataSpec) -> None:
        """Let a dataset go once nothing will train on it again (a finished replicate's)."""
        with self._lock:
            self._cache.pop(data_spec.model_dump_json(), None)


@dataclass(frozen=True)
class Run:
    """A spec resolved once; see the module docstring."""

    spec: RunSpec
    task: Task
    plugins: dict[str, Regularizer] = field(default_factory=dict, compare=False)
    datasets: Datasets = field(default_factory=Datasets, compare=False)

    @cached_property
    def key(self) -> str:
        """The workload and its complete arguments as one string, for study names and stored work."""
        return json.dumps({"name": self.task.name, "args": args_dict(self.task.args)}, sort_keys=True)

    @cached_property
    def architecture(self) -> Architecture:
        return self.task.architecture()

    def plugin(self, name: str) -> Regularizer:
        """The regularizer plugin ``name``, loaded once per command."""
        if name not in self.plugins:
            self.plugins[name] = registry.load(name)
        return self.plugins[name]

    def check(self, regularizers: Iterable[str]) -> list[Regularizer]:
        """The plugins named, loaded; one that cannot work on the workload is refused in one line."""
        plugins = [self.plugin(name) for name in regularizers]
        for plugin in plugins:
            self.task.refuse_incompatible(plugin)
        return plugins

    def dataset(self) -> Dataset:
        """This run's dataset (of ``spec.data``), loaded on first use and reused."""
        return self.datasets.get(self.task)

    def with_spec(self, spec: RunSpec) -> Run:
        """The same workload and plugins with another spec (a replicate's seeds, an arm list), sharing
        the plugins and datasets already loaded. The workload and its arguments must stay the same."""
        if spec.workload != self.spec.workload:
            raise ValueError("Run.with_spec keeps the workload; resolve another spec with resolve_run")
        if spec == self.spec:
            return self
        return Run(spec, Task(self.task.workload, self.task.args, spec.data), self.plugins, self.datasets)


def resolve_run(spec: RunSpec, regularizers: Iterable[str] = (), datasets: Datasets | None = None) -> Run:
    """The run a spec describes: its workload resolved (arguments validated and written out into the
    spec) and ``regularizers`` loaded, any that cannot work on the workload refused in one line.
    ``datasets`` shares loaded datasets with other runs (a worker's studies)."""
    task = resolve(spec)
    full = args_dict(task.args)
    if spec.workload.args != full:
        spec = spec.model_copy(update={"workload": spec.workload.model_copy(update={"args": full})})
    run = Run(spec, Task(task.workload, task.args, spec.data), datasets=datasets or Datasets())
    run.check(dict.fromkeys(regularizers))
    return run
