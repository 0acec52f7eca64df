"""Discovery of plugins through entry points: regularizers and workloads.

What it is: the only way sscbench finds a plugin of either kind, built-in or
not: ``importlib.metadata.entry_points(group=...)`` for the groups
``sscbench.regularizers`` and ``sscbench.workloads``. Plugins are imported
lazily, when first asked for by name, and checked against their interface.
What it is not: an import-time registry; nothing registers itself by being imported.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from sscbench.regularizer import OPTIMIZER_PARAMS, Regularizer
from sscbench.workload import Workload

GROUP = "sscbench.regularizers"
WORKLOAD_GROUP = "sscbench.workloads"


class PluginError(Exception):
    """A plugin cannot be found, is registered twice, or fails to load."""


@dataclass(frozen=True)
class PluginInfo:
    """An entry point in a group, not yet imported."""

    name: str
    target: str
    distribution: str
    version: str

    @classmethod
    def of(cls, ep: EntryPoint) -> PluginInfo:
        dist = ep.dist
        return cls(
            name=ep.name,
            target=ep.value,
            distribution=dist.metadata["Name"] if dist is not None else "(unknown)",
            version=dist.version if dist is not None else "(unknown)",
        )


class Group:
    """One entry-point group: discovery, lazy loading and the interface checks of its kind."""

    def __init__(self, group: str, kind: str, base: type, validate: Callable[[type, str], None]) -> None:
        self.group, self.kind, self.base, self._validate = group, kind, base, validate
        self._loaded: dict[str, Any] = {}

    def entry_points(self) -> list[EntryPoint]:
        return list(entry_points(group=self.group))

    def discover(self) -> dict[str, PluginInfo]:
        """Every registered plugin by name; a name registered by two distributions is an error."""
        found: dict[str, PluginInfo] = {}
        for ep in self.entry_points():
            info = PluginInfo.of(ep)
            if info.name in found and found[info.name] != info:
                other = found[info.name]
                raise PluginError(
                    f"{self.kind} '{info.name}' is registered twice: by {other.distribution} "
                    f"{other.version} ({other.target}) and by {info.distribution} {info.version} "
                    f"({info.target}); uninstall one of them"
                )
            found[info.name] = info
        return dict(sorted(found.items()))

    def available(self) -> list[str]:
        return list(self.discover())

    def unknown(self, name: str, names: list[str]) -> PluginError:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        listing = ", ".join(names) if names else "(none installed)"
        return PluginError(f"unknown {self.kind} '{name}'.{hint} Available: {listing}")

    def load(self, name: str) -> Any:
        """The plugin registered as ``name``, imported, checked and instantiated (once per process)."""
        if name in self._loaded:
            return self._loaded[name]
        plugins = self.discover()
        if name not in plugins:
            raise self.unknown(name, list(plugins))
        info = plugins[name]
        ep = next(ep for ep in self.entry_points() if ep.name == name)
        try:
            obj = ep.load()
        except Exception as exc:  # any import failure is reported with its cause
            raise PluginError(
                f"{self.kind} '{name}' from {info.distribution} {info.version} failed to import "
                f"({info.target}): {type(exc).__name__}: {exc}"
            ) from exc
        where = f"{self.kind} '{name}' ({info.target}, from {info.distribution})"
        if not (inspect.isclass(obj) and issubclass(obj, self.base)):
            raise PluginError(f"{where} is not a subclass of {self.base.__module__}.{self.base.__name__}")
        if getattr(obj, "name", None) != info.name:
            raise PluginError(f"{where}: its name attribute is {getattr(obj, 'name', None)!r}, "
                              f"expected {info.name!r}")
        self._validate(obj, where)
        self._loaded[name] = obj()
        return self._loaded[name]

    def cache_clear(self) -> None:
        self._loaded.clear()


def _validate_regularizer(cls: type[Regularizer], where: str) -> None:
    if clash := set(cls.param_names()) & set(OPTIMIZER_PARAMS):
        raise PluginError(f"{where}: Params must not declare {sorted(clash)} (the harness owns them)")
    if extra := set(cls.search_space) - set(cls.param_names()):
        raise PluginError(f"{where}: search_space names {sorted(extra)}, which Params lacks")


def _validate_workload(cls: type[Workload], where: str) -> None:
    try:
        cls.Args()
    except ValueError as exc:
        raise PluginError(f"{where}: every field of Args needs a default ({' '.join(str(exc).split())})") from None
    if not getattr(cls, "description", "") or "\n" in cls.description:
        raise PluginError(f"{where}: description must be one non-empty line")


REGULARIZERS = Group(GROUP, "regularizer", Regularizer, _validate_regularizer)
WORKLOADS = Group(WORKLOAD_GROUP, "workload", Workload, _validate_workload)


def discover() -> dict[str, PluginInfo]:
    """Every registered regularizer by name."""
    return REGULARIZERS.discover()


def available() -> list[str]:
    return REGULARIZERS.available()


def load(name: str) -> Regularizer:
    """The regularizer registered as ``name``, imported and instantiated."""
    return REGULARIZERS.load(name)



def load_workload(name: str) -> Workload:
    """The workload registered as ``name``, imported and instantiated."""
    return WORKLOADS.load(name)


#: Modules that only present results (the command line, tables, figures, the page, exports, the study's
#: matrix): they never change a number a replicate or an evaluation unit stores, so editing them keeps
#: stored work. Nothing that trains, tunes, loads data or derives seeds may be listed here.
PRESENTATION = ("cli.py", "output/render.py", "output/plot.py", "output/html.py", "output/export.py",
                "stages/study.py")


def fingerprinted() -> list[Path]:
    """sscbench's own modules that decide results: every one in every layer, but ``PRESENTATION``."""
    package = Path(__file__).resolve().parents[1]
    return sorted(p for p in package.rglob("*.py") if p.relative_to(package).as_posix() not in PRESENTATION)


def code_fingerprint(regularizers: Iterable[str], workloads: Iterable[str] = ()) -> str:
    """A hash of the code that decides results: every sscbench module but ``PRESENTATION``, and the
    named plugins' modules.

    Stored work (evaluation units, replicate checkpoints) is keyed by it, so editing a plugin, a
    workload or the trainer never returns numbers that the edited code did not compute.
    """
    package = Path(__file__).resolve().parents[1]
    files = fingerprinted()
    plugins = [type(load(n)) for n in sorted(set(regularizers))]
    plugins += [type(load_workload(n)) for n in sorted(set(workloads))]
    for cls in plugins:
        source = inspect.getsourcefile(cls)
        if source is not None and Path(source).resolve() not in files:
            files.append(Path(source).resolve())
    digest = hashlib.sha256()
    for path in files:
        name = path.relative_to(package).as_posix() if path.is_relative_to(package) else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
