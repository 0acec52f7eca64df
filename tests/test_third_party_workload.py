"""A workload from another distribution: installed, discovered, checked and run through the CLI, unchanged sscbench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import install_example

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "plugins" / "examples" / "stripes"
SSCBENCH = Path(sys.executable).parent / "sscbench"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example distribution pip-installed into a private folder (not the project's venv)."""
    return install_example(tmp_path_factory, EXAMPLE, "sscbench_stripes")


def run(site: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"COLUMNS": "200", "PYTHONPATH": str(site)}
    return subprocess.run([str(SSCBENCH), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


def test_not_visible_without_the_install():
    from sscbench.contracts import registry

    assert "stripes" not in registry.WORKLOADS.available() and "mnist1d-cnn" in registry.WORKLOADS.available()


def test_discovered_checked_tuned_and_evaluated(site, tmp_path):
    listed = run(site, "workloads", cwd=tmp_path)
    assert listed.returncode == 0 and "stripes" in listed.stdout and "sscbench-stripes" in listed.stdout
    assert "[8, 8] / 4" in listed.stdout
    checked = run(site, "check-plugin", "gradnorm", "--workload", "stripes", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAIL" not in checked.stdout and checked.stdout.count("pass") == 6
    out = tmp_path / "results"
    refused = run(site, "tune", "ssc", "--workload", "stripes", "--out", out, cwd=tmp_path)
    assert refused.returncode == 2 and "cannot run on workload 'stripes'" in refused.stderr and not out.exists()
    done = run(site, "reproduce", "--workload", "stripes", "--arms", "baseline,gradnorm", "--trials", 2,
               "--tune-epochs", 2, "--seeds", 2, "--epochs", 3, "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "evaluate.json").read_text())
    assert result["spec"]["workload"] == {"name": "stripes",
                                          "args": {"size": 8, "samples": 3000, "noise": 0.8, "hidden": 64}}
    assert [a["name"] for a in result["arms"]] == ["baseline", "gradnorm"]
    assert all(a["mean"] > 0.5 for a in result["arms"])  # learnable: chance is 0.25
    assert list(Path(os.environ["SSCBENCH_CACHE"]).glob("stripes-*.npz"))  # generated once, then cached
