"""The documented `optuna-dashboard STORAGE` (the `dashboard` extra) on sscbench's storages: it starts on
127.0.0.1, answers one HTTP request listing the study sscbench made, and stops."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ok
from test_workers import needs_pg

DASHBOARD = Path(sys.executable).parent / "optuna-dashboard"  # the venv's, beside its python
DASHBOARD = DASHBOARD if DASHBOARD.exists() else shutil.which("optuna-dashboard")
pytestmark = pytest.mark.skipif(DASHBOARD is None, reason="optuna-dashboard is not installed: "
                                                          "pip install 'sscbench[dashboard]' (make test does)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listed(storage: str) -> list[str]:
    """The study names the dashboard lists for ``storage``, asked over HTTP on 127.0.0.1."""
    port = free_port()
    proc = subprocess.Popen([str(DASHBOARD), storage, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    return [s["study_name"] for s in json.load(response)["study_summaries"]]
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"the dashboard did not answer: {proc.stdout.read()}") from None
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_dashboard_lists_a_study_on_sqlite(tmp_path):
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--study-name", "watched", "--out", tmp_path)
    assert listed(f"sqlite:///{tmp_path / 'optuna.db'}") == ["watched"]


@needs_pg
def test_the_dashboard_lists_a_study_on_postgresql_with_a_password_free_url(tmp_path, pg_url):
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--study-name", "watched", "--storage", pg_url,
       "--out", tmp_path)
    assert ":" not in pg_url.split("//")[1].split("@")[0]  # no password in the URL: libpq's password file
    assert listed(pg_url) == ["watched"]
