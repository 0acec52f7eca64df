"""The Makefile targets the README shows exist and name the commands they should run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_readme_make_targets_dry_run():
    for target, expected in [("test", "pytest"), ("test", "tools/with-postgres.sh"), ("lint", "ruff check"),
                             ("reproduce", "sscbench reproduce"), ("bench-workers", "benchmarks/workers.py"),
                             ("fuzz", "SSCBENCH_FUZZ_EXAMPLES=3000"),
                             ("bench", "benchmarks/run.py"), ("bench-tiny", "benchmarks/run.py --tiny"),
                             ("test", "tools/ensure-chromium.sh"), ("study", "sscbench study"),
                             ("study", "sscbench report --html --out docs/study"),
                             ("study", "tools/readme_matrix.py docs/study/study.json README.md")]:
        # -o treats the install stamp as up to date, so only the target's own recipe is printed
        done = subprocess.run(["make", "-n", "-o", ".venv/.installed-stamp", target], cwd=ROOT,
                              capture_output=True, text=True, check=True)
        assert expected in done.stdout, (target, done.stdout)


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
