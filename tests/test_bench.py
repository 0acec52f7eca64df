"""The benchmark runs at its tiny size (so it cannot rot); no time is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_tiny_benchmark_writes_its_report(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny", "--workers", "3",
                           "--plain-protocol", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, env=os.environ | {"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert [r["implementation"] for r in report["rows"]] == ["sscbench", "sscbench --workers 3", "plain", "jacrev"]
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["cores"] >= 1 and machine["cpu"]
    assert machine["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    if Path("/proc/cpuinfo").exists():  # family and model tell CPUs of one marketing name apart
        assert machine["family"].isdigit() and machine["model"].isdigit()
    flops = report["model_flops_per_sample"]
    assert report["matmul_flops"] > 0 and flops["ssc"] > flops["baseline"] > 0
    peaks = report["matmul_flops_per_library"]
    assert "torch.matmul" in peaks and report["matmul_flops"] == max(peaks.values())
    for row in report["rows"]:
        assert row["seconds_median"] > 0 and 0 < row["mfu"] and row["peak_rss_mb"] > 0
    assert [r["implementation"] for r in report["workload_rows"]] == ["sscbench cnn", "plain cnn",
                                                                     "sscbench mlp, generic stack"]
    assert all(r["seconds_median"] > 0 and r["ratio"] > 0 for r in report["workload_rows"])
    assert "mnist1d-cnn stack against a plain loop" in done.stdout
    assert report["protocol"]["seconds"] > 0 and "sscbench reproduce" in report["protocol"]["command"]
    assert "MFU" in done.stdout and "sscbench reproduce" in done.stdout
    plain = report["plain_protocol"]
    assert plain["seconds"] > 0 and plain["peak_rss_mb"] > 0 and "plain script" in done.stdout
    for method in ("baseline", "ssc"):  # the plain script ran the whole protocol at the tiny size
        assert len(plain["results"][method]["test_accuracy"]) == 2
        assert 0 < plain["results"][method]["best_validation"] <= 1


@pytest.mark.skipif("SSCBENCH_TEST_POSTGRES" not in os.environ,
                    reason="no PostgreSQL server: run the suite through `make test`")
def test_tiny_workers_benchmark_writes_its_report(tmp_path):
    out = tmp_path / "bench-workers.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "workers.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert [r["configuration"] for r in report["rows"]] == [
        "1 process, SQLite", "1 process, PostgreSQL", "2 processes, PostgreSQL", "1 process --workers 2, PostgreSQL"]
    assert all(r["seconds_median"] > 0 for r in report["rows"])
    db = report["database"]
    assert db["statements"] > 0 and 0 < db["db_seconds"] <= db["wall_seconds"] and db["lock_seconds"] > 0
    for entries in report["model"]["cases"].values():
        assert [e["workers"] for e in entries] == [8, 32, 128]
        assert all(0 < e["speedup"] <= e["workers"] for e in entries)
    assert "modelled" in done.stdout


def test_tiny_sequential_benchmark_writes_its_report(tmp_path):
    out = tmp_path / "bench-sequential.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sequential.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert [r["difference_points"] for r in report["rows"]][:3] == [0.0, 0.5, 1.0]
    for row in report["rows"]:
        assert sum(row["decisions"].values()) == pytest.approx(1.0)
        assert 5 <= row["expected_replicates"] <= 40
    assert report["rows"][2]["decisions"]["better"] > 0.9 and report["rows"][2]["fixed_n_same_power"] > 2
    assert "fixed n" in done.stdout
    assert "bench-sequential:" in (ROOT / "Makefile").read_text()


def test_the_sequential_benchmark_simulates_the_differences_it_is_given(tmp_path):
    """The sizing command docs/statistics.md shows for Crop, at the tiny size; a bad list is one line."""
    out = tmp_path / "crop.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sequential.py"), "--tiny", "--sd", "0.47",
                           "--max-replicates", "10", "--differences", "0,0.25,0.5", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["max_replicates"] == 10 and report["sd_points"] == 0.47
    assert [r["difference_points"] for r in report["rows"]] == [0.0, 0.25, 0.5]
    assert all(r["replicates_p90"] <= 10 for r in report["rows"])
    docs = " ".join((ROOT / "docs" / "statistics.md").read_text().split())
    assert "python benchmarks/sequential.py --sd 0.47 --max-replicates 10 --differences 0,0.25,0.5" in docs
    for bad in ("0,x", "-1"):
        refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sequential.py"), "--tiny",
                                  "--differences", bad, "--out", str(tmp_path / "no.json")],
                                 capture_output=True, text=True, cwd=ROOT)
        assert refused.returncode == 2 and "--differences" in refused.stderr and "Traceback" not in refused.stderr
        assert not (tmp_path / "no.json").exists()
