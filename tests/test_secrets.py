"""The storage password never reaches a file, a record or a line: masking, password-free URLs, scrub.

The end-to-end tests run tune, evaluate and a tiny compare against the real PostgreSQL that
`make test` starts (tools/with-postgres.sh, which requires a password: scram-sha-256), with the
password given in the URL by option, by environment variable and by spec file, then look for it
in every file written, in a dump of the database and in everything printed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from urllib.parse import quote

import pytest
from conftest import invoke, ok
from hypothesis import given
from hypothesis import strategies as st

from sscbench import redact
from sscbench.output import results
from sscbench.output.results import Provenance, TuneResult
from sscbench.spec import RunSpec

PG = os.environ.get("SSCBENCH_TEST_POSTGRES")
PASSWORD = os.environ.get("SSCBENCH_TEST_POSTGRES_PASSWORD")
PG_BIN = os.environ.get("SSCBENCH_TEST_PG_BIN")
CLI = [sys.executable, "-m", "sscbench.cli"]
needs_pg = pytest.mark.skipif(PG is None or PASSWORD is None or PG_BIN is None,
                              reason="no password-protected PostgreSQL server: run the suite through `make test`, "
                                     "which starts one (tools/with-postgres.sh)")


# --- the one masking function -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "masked"), [
    ("postgresql+psycopg://bars:s3cretPW@127.0.0.1:5432/postgres", "postgresql+psycopg://bars:***@127.0.0.1:5432/postgres"),
    ("postgresql://u:p@ss:w/rd@host/db", "postgresql://u:***@host/db"),  # raw @, : and / in a password
    ("postgresql://u:p%40ss%20@host/db", "postgresql://u:***@host/db"),  # percent-encoded
    ("tune x --storage postgresql://u:pw@h/db --out r", "tune x --storage postgresql://u:***@h/db --out r"),
    ("--storage=postgres://u:pw@h/db", "--storage=postgres://u:***@h/db"),
    ("postgresql+psycopg://u@/db?host=/run/pg&password=pw&sslmode=off",
     "postgresql+psycopg://u@/db?host=/run/pg&password=***&sslmode=off"),
    ("host=/run/pg PASSWORD=pw user=u", "host=/run/pg PASSWORD=*** user=u"),  # a libpq keyword string
    ("'postgresql://u:pw@h/db' cannot be used", "'postgresql://u:***@h/db' cannot be used"),
    ("postgresql://u:***@h/db", "postgresql://u:***@h/db"),  # idempotent
])
def test_mask_hides_every_form_of_url_password(text, masked):
    assert redact.mask(text) == masked


@pytest.mark.parametrize("text", [
    "postgresql+psycopg://postgres@/sscbench?host=/tmp/x", "postgresql://db-host:5432/sscbench",
    "sqlite:////home/me/results/optuna.db", "mail me at someone@example.org", "ratio 1:2 @ 3 epochs",
])
def test_mask_leaves_text_without_a_password_alone(text):
    assert redact.mask(text) == text


@given(user=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                                  blacklist_characters=":/@?#'\""), max_size=8),
       password=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
                                      blacklist_characters="'\""), min_size=1, max_size=16))
def test_mask_takes_out_any_password_without_spaces_or_quotes(user, password):
    """Even a raw "@" (which sscbench refuses in a storage URL, as drivers split at the first one)."""
    url = f"postgresql+psycopg://{user}:{password}@db-host:5432/sscbench"
    assert redact.mask(url) == f"postgresql+psycopg://{user}:***@db-host:5432/sscbench"
    assert redact.mask(f"run --storage {url} --out r") == f"run --storage {redact.mask(url)} --out r"


def test_a_url_with_spaces_quotes_or_control_characters_is_refused_without_showing_it(tmp_path):
    for url in ("postgresql://u:pa ss@h/db", "postgresql://u:it's@h/db", "postgresql://u:a\nb@h/db",
                "postgresql://u:p@ss@127.0.0.1:1/db"):
        assert redact.unsafe(url)
        res = invoke("tune", "baseline", "--trials", 1, "--epochs", 1, "--storage", url, "--out", tmp_path / "o")
        assert res.exit_code == 2 and "percent-encode" in res.stderr, res.output
        assert not any(part in res.output for part in ("pa ss", "it's", "a\nb", "ss@127"))
    assert not (tmp_path / "o").exists()


def test_results_records_and_specs_serialise_masked():
    spec = RunSpec(storage={"url": "postgresql://u:hunter2@h/db"})
    assert spec.storage.url == "postgresql://u:hunter2@h/db"  # the run itself sees the real URL
    assert "hunter2" not in spec.model_dump_json() and "hunter2" not in repr(spec)
    assert spec.model_dump()["storage"]["url"] == "postgresql://u:***@h/db"
    prov = Provenance(sscbench="0", torch="0", optuna="0", python="3", platform="p", git_revision=None, device="cpu",
                      threads=1, command="sscbench tune ssc --storage postgresql://u:hunter2@h/db", started="s",
                      finished="f", wall_seconds=0.0)
    assert "hunter2" not in prov.model_dump_json() and prov.command.endswith("hunter2@h/db")


def test_serialising_a_results_file_without_a_password_gives_the_same_bytes(tmp_path):
    out = tmp_path / "out"
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--out", out)
    path = out / "tune-baseline.json"
    text = path.read_text()
    assert results.load(path, TuneResult).model_dump_json(indent=2, by_alias=True) + "\n" == text
    assert results.scrubbed(path) is None


# --- the password never reaches a file, a record or a line ---------------------------------------

def _forms(password: str) -> list[str]:
    """The ways a password could show: as typed, percent-encoded, and escaped as repr/JSON write it."""
    return list(dict.fromkeys([password, quote(password, safe=""), repr(password)[1:-1],
                               json.dumps(password)[1:-1]]))


def _dump(url: str) -> str:
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    host = admin.split("host=", 1)[1].split("&", 1)[0]
    name = admin.split("?", 1)[0].rsplit("/", 1)[1]
    res = subprocess.run([f"{PG_BIN}/pg_dump", "-h", host, "-U", "postgres", "-d", name, "--data-only"],
                         capture_output=True, text=True, check=True, env=os.environ | {"PGPASSWORD": PASSWORD})
    assert "sscbench_job" in res.stdout  # the job records are in the dump, so they were searched
    return res.stdout


TINY = {
    "tune": ["tune", "baseline", "--trials", "2", "--epochs", "1"],
    "evaluate": ["evaluate", "--arms", "baseline", "--seeds", "2", "--epochs", "1"],
    "compare": ["compare", "--arms", "baseline,labelsmooth", "--replicates", "2", "--trials", "2", "--tune-epochs",
                "1", "--seeds", "2", "--epochs", "1"],
}


@needs_pg
@pytest.mark.parametrize("source", ["option", "environment", "spec file"])
def test_the_password_is_found_nowhere_after_tune_evaluate_and_compare(tmp_path, pg_url, monkeypatch, source):
    url = pg_url.replace("postgres@", f"postgres:{quote(PASSWORD, safe='')}@")  # the password in the URL
    monkeypatch.delenv("PGPASSFILE")  # so the password can only come from the URL
    printed = []
    for command, args in TINY.items():
        extra = ["--out", str(tmp_path / ("compare" if command == "compare" else "out"))]
        if source == "option":  # a real process, so that the command line it records is its own
            res = subprocess.run([*CLI, *args, *extra, "--storage", url], capture_output=True, text=True)
            assert res.returncode == 0, res.stdout + res.stderr
        else:
            from typer.testing import CliRunner

            from sscbench.cli import app

            if source == "environment":
                env = {"SSCBENCH_STORAGE": url}
            else:
                spec = tmp_path / "spec.toml"
                spec.write_text(f"[storage]\nurl = {json.dumps(url)}\n")
                extra, env = [*extra, "--spec", str(spec)], None
            res = CliRunner().invoke(app, [*args, *extra], env=env)
            assert res.exit_code == 0, res.output + repr(res.exception)
        printed += [res.stdout, res.stderr]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "spec.toml"]
    assert {"tune-baseline.json", "evaluate.json", "compare.json"} <= {p.name for p in written}
    assert not list(tmp_path.rglob("optuna.db"))  # everything went to PostgreSQL
    haystacks = {str(p): p.read_bytes().decode(errors="replace") for p in written}
    haystacks |= {"pg_dump": _dump(pg_url), "output": "\n".join(printed)}
    for name, text in haystacks.items():
        for form in _forms(PASSWORD):
            assert form not in text, f"the password ({form!r}) is in {name}"
    tune = json.loads((tmp_path / "out" / "tune-baseline.json").read_text())
    assert tune["spec"]["storage"]["url"] == redact.mask(url)
    if source == "option":
        assert redact.mask(url) in tune["provenance"]["command"]
    assert all(s["storage"].endswith(pg_url.split("@", 1)[1]) and ":***@" in s["storage"] for s in tune["studies"])


@needs_pg
def test_a_url_without_a_password_takes_it_from_pgpassword_or_a_password_file(tmp_path, pg_url, monkeypatch):
    monkeypatch.delenv("PGPASSFILE")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.pgpass yet
    res = invoke("tune", "baseline", "--trials", 1, "--epochs", 1, "--storage", pg_url, "--out", tmp_path / "a")
    assert res.exit_code == 2 and "PGPASSWORD" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "a").exists()  # refused before anything was written

    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--storage", pg_url, "--out", tmp_path / "b")
    monkeypatch.delenv("PGPASSWORD")

    passfile = tmp_path / ".pgpass"
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text(f"*:*:*:postgres:{escaped}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    ok("tune", "baseline", "--trials", 2, "--epochs", 1, "--storage", pg_url, "--out", tmp_path / "c")
    assert json.loads((tmp_path / "c" / "tune-baseline.json").read_text())["studies"][0]["storage"] == pg_url


@needs_pg
def test_worker_takes_its_storage_from_the_environment(tmp_path, pg_url):
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--storage", pg_url, "--out", tmp_path)
    from typer.testing import CliRunner

    from sscbench.cli import app

    res = CliRunner().invoke(app, ["worker"], env={"SSCBENCH_STORAGE": pg_url})
    assert res.exit_code == 0 and "served 0 study(ies)" in res.stdout, res.output
    res = CliRunner().invoke(app, ["worker"], env={"SSCBENCH_STORAGE": None})
    assert res.exit_code == 2 and "SSCBENCH_STORAGE" in res.stderr


# --- files written before: report reads them, scrub masks them -----------------------------------

@pytest.fixture
def old_files(tmp_path):
    """A results folder as an sscbench before masking wrote it: the password in the recorded command."""
    out = tmp_path / "old"
    ok("tune", "baseline", "--trials", 1, "--epochs", 1, "--out", out)
    path = out / "tune-baseline.json"
    document = json.loads(path.read_text())
    document["provenance"]["command"] += " --storage postgresql://bars:s3cretPW@h/db"
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.chmod(0o640)
    return out


def test_report_reads_an_old_file_unchanged_and_says_to_scrub_it(old_files):
    path = old_files / "tune-baseline.json"
    before = path.read_bytes()
    res = ok("report", "--out", old_files)
    assert "sscbench scrub" in res.stderr and "s3cretPW" not in res.output
    assert path.read_bytes() == before


def test_scrub_masks_old_files_in_place_and_leaves_everything_else(old_files):
    path = old_files / "tune-baseline.json"
    before = path.read_text()
    res = ok("scrub", old_files)
    assert "1 file(s) scrubbed, 0 already clean" in res.stdout
    after = path.read_text()
    assert "s3cretPW" not in after and "postgresql://bars:***@h/db" in after
    assert after == before.replace("s3cretPW", "***")  # every other byte as it was
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert not [p for p in old_files.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert results.load(path, TuneResult).provenance.command.endswith("bars:***@h/db")
    assert "0 file(s) scrubbed, 1 already clean" in ok("scrub", path).stdout


def test_scrub_refuses_before_rewriting_anything(old_files, tmp_path):
    path = old_files / "tune-baseline.json"
    before = path.read_bytes()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for args in ([path, broken], [path, tmp_path / "missing.json"]):
        res = invoke("scrub", *args)
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
        assert path.read_bytes() == before
