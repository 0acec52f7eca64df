"""Plugin discovery: unknown names, duplicates across distributions, import failures."""

from __future__ import annotations

import pytest

from sscbench.contracts import registry
from sscbench.contracts.registry import PluginError


class FakeDist:
    def __init__(self, name: str, version: str = "1.0") -> None:
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    def __init__(self, name: str, value: str, dist: str, loader=None) -> None:
        self.name, self.value, self.dist = name, value, FakeDist(dist)
        self._loader = loader

    def load(self):
        return self._loader()


@pytest.fixture
def fake_group(monkeypatch):
    points: list[FakeEntryPoint] = []
    monkeypatch.setattr(registry.REGULARIZERS, "entry_points", lambda: points)
    registry.REGULARIZERS.cache_clear()
    yield points
    registry.REGULARIZERS.cache_clear()


def test_unknown_name_lists_plugins_and_suggests_the_closest():
    with pytest.raises(PluginError) as err:
        registry.load("scc")
    message = str(err.value)
    assert "unknown regularizer 'scc'" in message and "Did you mean 'ssc'" in message
    assert "baseline" in message


def test_same_name_from_two_distributions_is_an_error_naming_both(fake_group):
    from sscbench_plugins.ssc import SSC

    fake_group += [FakeEntryPoint("ssc", "a.mod:SSC", "dist-a", lambda: SSC),
                   FakeEntryPoint("ssc", "b.mod:SSC", "dist-b", lambda: SSC)]
    with pytest.raises(PluginError, match="registered twice: by dist-a.*by dist-b"):
        registry.discover()


def test_import_failure_names_plugin_distribution_and_cause(fake_group):
    def broken():
        raise ModuleNotFoundError("No module named 'not_there'")

    fake_group.append(FakeEntryPoint("broken", "not_there:Reg", "broken-dist", broken))
    with pytest.raises(PluginError) as err:
        registry.load("broken")
    message = str(err.value)
    assert "'broken'" in message and "broken-dist" in message and "not_there" in message


def test_a_target_that_is_not_a_regularizer_is_refused(fake_group):
    fake_group.append(FakeEntryPoint("odd", "x:y", "odd-dist", lambda: object))
    with pytest.raises(PluginError, match="not a subclass"):
        registry.load("odd")


def test_a_name_mismatch_is_refused(fake_group):
    from sscbench_plugins.ssc import SSC

    fake_group.append(FakeEntryPoint("other", "x:SSC", "d", lambda: SSC))
    with pytest.raises(PluginError, match="expected 'other'"):
        registry.load("other")


def test_builtins_come_from_sscbench_distribution():
    plugins = registry.discover()
    assert plugins["ssc"].distribution == "sscbench"
    assert plugins["ssc"].target == "sscbench_plugins.ssc:SSC"
