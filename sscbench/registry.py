"""Discovery of regularizer plugins through entry points.

What it is: the only way sscbench finds a regularizer, built-in or not:
``importlib.metadata.entry_points(group="sscbench.regularizers")``. Plugins are
imported lazily, when first asked for by name.
What it is not: an import-time registry; nothing registers itself by being imported.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points

from sscbench.regularizer import OPTIMIZER_PARAMS, Regularizer

GROUP = "sscbench.regularizers"


class PluginError(Exception):
    """A plugin cannot be found, is registered twice, or fails to load."""


@dataclass(frozen=True)
class PluginInfo:
    """An entry point in the group, not yet imported."""

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


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=GROUP))


def discover() -> dict[str, PluginInfo]:
    """Every registered plugin by name; a name registered by two distributions is an error."""
    found: dict[str, PluginInfo] = {}
    for ep in _entry_points():
        info = PluginInfo.of(ep)
        if info.name in found and found[info.name] != info:
            other = found[info.name]
            raise PluginError(
                f"regularizer '{info.name}' is registered twice: by {other.distribution} "
                f"{other.version} ({other.target}) and by {info.distribution} {info.version} "
                f"({info.target}); uninstall one of them"
            )
        found[info.name] = info
    return dict(sorted(found.items()))


def available() -> list[str]:
    return list(discover())


def _unknown(name: str, names: list[str]) -> PluginError:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listing = ", ".join(names) if names else "(none installed)"
    return PluginError(f"unknown regularizer '{name}'.{hint} Available: {listing}")


def _validate(cls: type[Regularizer], info: PluginInfo) -> None:
    where = f"regularizer '{info.name}' ({info.target}, from {info.distribution})"
    if getattr(cls, "name", None) != info.name:
        raise PluginError(f"{where}: its name attribute is {getattr(cls, 'name', None)!r}, "
                          f"expected {info.name!r}")
    if clash := set(cls.param_names()) & set(OPTIMIZER_PARAMS):
        raise PluginError(f"{where}: Params must not declare {sorted(clash)} (the harness owns them)")
    if extra := set(cls.search_space) - set(cls.param_names()):
        raise PluginError(f"{where}: search_space names {sorted(extra)}, which Params lacks")


@cache
def load(name: str) -> Regularizer:
    """The plugin registered as ``name``, imported and instantiated."""
    plugins = discover()
    if name not in plugins:
        raise _unknown(name, list(plugins))
    info = plugins[name]
    ep = next(ep for ep in _entry_points() if ep.name == name)
    try:
        obj = ep.load()
    except Exception as exc:  # any import failure is reported with its cause
        raise PluginError(
            f"regularizer '{name}' from {info.distribution} {info.version} failed to import "
            f"({info.target}): {type(exc).__name__}: {exc}"
        ) from exc
    if not (inspect.isclass(obj) and issubclass(obj, Regularizer)):
        raise PluginError(
            f"regularizer '{name}' ({info.target}, from {info.distribution}) is not a "
            "subclass of sscbench.regularizer.Regularizer"
        )
    _validate(obj, info)
    return obj()


def code_fingerprint(regularizers: list[str]) -> str:
    """A hash of the code that decides results: every sscbench module and the named plugins' modules.

    Stored work (evaluation units, replicate checkpoints) is keyed by it, so editing a plugin or
    the trainer never returns numbers that the edited code did not compute.
    """
    import hashlib
    from pathlib import Path

    files = sorted(Path(__file__).resolve().parent.glob("*.py"))
    for name in sorted(set(regularizers)):
        source = inspect.getsourcefile(type(load(name)))
        if source is not None:
            files.append(Path(source).resolve())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
