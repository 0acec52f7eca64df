"""Every `sscbench` command the README shows names a real command and real options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sscbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("sscbench "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_readme_shows_the_commands():
    subcommands = {c[0] for c in readme_commands()}
    assert {"tune", "evaluate", "reproduce", "compare", "report", "plugins", "check-plugin"} <= subcommands


@pytest.mark.parametrize("argv", readme_commands(), ids=" ".join)
def test_readme_command_uses_real_options(argv):
    help_text = runner.invoke(app, [argv[0], "--help"], terminal_width=200)
    assert help_text.exit_code == 0, f"unknown command: {argv[0]}"
    for word in argv[1:]:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert re.search(rf"{re.escape(option)}(?![\w-])", help_text.output), f"{argv[0]} has no option {option}"
