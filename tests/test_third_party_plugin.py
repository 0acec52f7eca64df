"""A plugin from another distribution: installed, discovered, checked, tuned and evaluated, unchanged sscbench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import install_example

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "plugins" / "examples" / "l1saliency"
SSCBENCH = Path(sys.executable).parent / "sscbench"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example distribution pip-installed into a private folder (not the project's venv)."""
    return install_example(tmp_path_factory, EXAMPLE, "sscbench_l1saliency")


def run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run([str(SSCBENCH), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)


def test_not_visible_without_the_install():
    from sscbench.contracts import registry

    assert "l1saliency" not in registry.available() and "ssc" in registry.available()


def test_discovered_checked_tuned_and_evaluated(site, tmp_path):
    listed = run(site, "plugins", cwd=tmp_path)
    assert listed.returncode == 0 and "l1saliency" in listed.stdout and "sscbench-l1saliency" in listed.stdout
    checked = run(site, "check-plugin", "l1saliency", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # every check on each of the four built-in workloads (the plugin accepts any input)
    assert "FAIL" not in checked.stdout and checked.stdout.count("pass") == 6 * 7  # the seven built-in workloads
    out = tmp_path / "results"  # both plugins tuned, then evaluated with their picks, in one process
    done = run(site, "reproduce", "--arms", "baseline,l1saliency", "--trials", 2, "--tune-epochs", 1, "--seeds", 2,
               "--epochs", 1, "--ablations", "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "tune-l1saliency.json").exists() and (out / "tune-baseline.json").exists()
    result = json.loads((out / "evaluate.json").read_text())
    assert [a["name"] for a in result["arms"]] == ["baseline", "l1saliency", "l1saliency-off"]
    arm = result["arms"][1]
    assert set(arm["params"]) == {"lr", "weight_decay", "lambda_l1"} and arm["params_source"].startswith("tuned:")
    assert [c["arm"] for c in result["comparisons"]] == ["l1saliency", "l1saliency-off"]
    assert all(v > 0 for v in arm["diagnostics"]["grad_norm_ratio"])
