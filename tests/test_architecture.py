"""The layering of sscbench's subpackages holds: no module imports a layer above its own.

The layers are listed in ``sscbench/__init__.py`` and docs/architecture.md. Every import counts,
including those inside functions.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sscbench"
#: Layer of each subpackage; the package's own modules are the foundation (0), the CLI the top.
LAYERS = {"stats": 1, "engine": 2, "contracts": 3, "output": 4, "stages": 5}
TOP = 6  # sscbench.cli


def layer(module: str) -> int:
    """The layer of a dotted module name under sscbench (``sscbench.engine.trainer`` -> 2)."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package itself
    if parts[1] == "cli":
        return TOP
    return LAYERS.get(parts[1], 0)


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(source: str, module: str) -> set[str]:
    """The sscbench modules a module's source imports (``from sscbench import x`` names a module x)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sscbench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                node.module.startswith("sscbench"):
            base = node.module
            submodules = {f"{base}.{a.name}" for a in node.names
                          if (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                          or (PACKAGE.parent / f"{base}.{a.name}".replace(".", "/")).is_dir()}
            found |= submodules or {base}
    return {m for m in found if m.split(".")[0] == "sscbench" and m != module}


def violations(modules: dict[str, str]) -> list[str]:
    out = []
    for module, source in modules.items():
        for target in sorted(imports(source, module)):
            if layer(target) > layer(module):
                out.append(f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})")
    return out


def sources() -> dict[str, str]:
    return {module_name(p): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_subpackage_is_a_known_layer_with_its_rules_written_down():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS)
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "May import:" in doc and "Must not import:" in doc, name


def test_no_module_imports_a_layer_above_its_own():
    assert violations(sources()) == []


def test_the_check_catches_an_upward_import():
    fake = {"sscbench.engine.trainer": "from sscbench.stages import tuning\n",
            "sscbench.spec": "def f():\n    from sscbench.output.results import save\n",
            "sscbench.stats.paired": "import sscbench.cli\n"}
    assert len(violations(fake)) == 3


def test_no_import_cycles_between_modules():
    graph = {m: {t for t in imports(s, m)} for m, s in sources().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_every_command_keeps_its_options_and_help_texts():
    """The options each command had before they were declared once (tests/data/cli-options.json; when a
    command gains or changes an option on purpose, rewrite it with SSCBENCH_UPDATE_CLI_OPTIONS=1)."""
    import json

    import typer

    from sscbench.cli import app

    group = typer.main.get_command(app)
    now = {name: {"help": cmd.help, "params": sorted(
        [{"opts": sorted(p.opts + p.secondary_opts), "help": getattr(p, "help", None), "default": repr(p.default),
          "envvar": p.envvar, "required": p.required} for p in cmd.params], key=lambda d: d["opts"])}
        for name, cmd in sorted(group.commands.items())}
    path = Path(__file__).parent / "data" / "cli-options.json"
    if os.environ.get("SSCBENCH_UPDATE_CLI_OPTIONS") == "1":  # a command gained or changed an option on purpose
        path.write_text(json.dumps(now, indent=1, sort_keys=True))
    assert now == json.loads(path.read_text())
