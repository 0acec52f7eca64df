"""Shared fixtures: one cached protocol dataset for the whole session, and results computed once for
every xdist worker (``once``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

# A cache inside the checkout (git-ignored) so repeated local runs skip generation.
os.environ.setdefault("SSCBENCH_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "sscbench"))

# Under pytest-xdist two workers share the machine's cores: each trains with one thread (and so does every
# process it starts), since two processes spinning two OpenMP threads each on two cores slow both down
# several times over.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

# A suite started in the background of a non-interactive shell inherits SIGINT ignored, and so would
# every sscbench process it starts (Python leaves an inherited SIG_IGN alone), so the Ctrl-C tests
# would see their signal ignored. A handled signal is reset to the default at exec: children get
# Python's own SIGINT handler back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: A spec file's data section for real-process tests whose point is not the numbers (signals, workers sharing a
#: storage, resumption): 1500 samples instead of the protocol's 10000, so training costs little beside the
#: processes' start-up.
SMALL_DATA = "[data]\nnum_samples = 1500\nvalidation_size = 200\n"


def small_data(folder: Path) -> tuple[str, Path]:
    """``--spec`` and a spec file in ``folder`` holding only ``SMALL_DATA``, to put before a command's options."""
    spec = folder / "small-data.toml"
    spec.write_text(SMALL_DATA)
    return "--spec", spec


@pytest.fixture(scope="session")
def dataset():
    from sscbench import data
    from sscbench.spec import DataSpec

    return data.load(DataSpec())


@pytest.fixture
def pg_url():
    """A fresh database on the suite's PostgreSQL (``make test`` starts it), dropped afterwards.

    The URL holds no password: libpq finds it in the password file the suite's server wrote.
    """
    import uuid

    import psycopg

    server = os.environ.get("SSCBENCH_TEST_POSTGRES")
    if server is None:
        pytest.skip("no PostgreSQL server: run the suite through `make test`, which starts one")
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield server.replace("/sscbench?", f"/{name}?")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def install_example(tmp_path_factory, example: Path, distribution: str) -> Path:
    """An example distribution under plugins/examples pip-installed into a private folder (not the venv)."""
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(example)], check=True, capture_output=True, cwd=build)
    assert list(target.glob(f"{distribution}-0.1.0.dist-info"))
    return target


def invoke(*args: object):
    """The sscbench CLI run in process on ``args`` (each turned into a string): typer's Result."""
    from typer.testing import CliRunner

    from sscbench.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: object):
    """``invoke``, asserting exit code 0 (the output and any exception shown when it is not)."""
    result = invoke(*args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], str]) -> tuple[Path, str]:
    """A folder that ``make(folder)`` fills once for the whole session, whichever xdist worker asks first,
    and the text it returned (a command's output). Tests that only read the folder share it; a test that
    changes files copies them first."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the workers' common folder
    folder, done = root / f"once-{name}", root / f"once-{name}.done"
    with FileLock(str(root / f"once-{name}.lock")):
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            done.write_text(make(folder))
    return folder, done.read_text()
