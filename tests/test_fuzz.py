"""Fuzzing every input sscbench reads: run specs, results files, storage URLs and the differences a
sequential comparison decides on.

Each generated input is either accepted or refused with sscbench's own error (which the CLI turns
into one line and exit code 2); nothing else may escape. The suite runs a modest number of cases;
`make fuzz` runs thousands (SSCBENCH_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from sscbench import redact
from sscbench.cli import app
from sscbench.contracts import registry, task
from sscbench.output import results
from sscbench.output.results import EvaluateResult, ResultsError
from sscbench.spec import RunSpec, SpecError, build_spec, format_validation
from sscbench.stages.storage import StorageError, job_record, open_storage
from sscbench.stats import sequential

EXAMPLES = int(os.environ.get("SSCBENCH_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _sections() -> dict[str, list[str]]:
    """Every section of the run spec and its keys, from the schema itself."""
    return {name: list(field.annotation.model_fields) for name, field in RunSpec.model_fields.items()}


SECTIONS = _sections()
ALL_KEYS = sorted({k for keys in SECTIONS.values() for k in keys} | {"name", "regularizer", "params", "from",
                                                                      "override", "low", "high", "log"})


def toml_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid TOML basic string


scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: "nan" if math.isnan(f) else ("inf" if f == math.inf else "-inf" if f == -math.inf else repr(f))),
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=12).map(toml_string),
    st.sampled_from(['"baseline"', '"ssc"', '"scc"', '"cpu"', '"cuda:7"', '"once"', '"per-replicate"', "0", "1",
                     "-1", "0.5", "1e-3", "[]", "{}", "[1, 2]", '{ lr = 1e-3, weight_decay = 0 }',
                     '{ lr = "x" }', '{ low = 1e-2, high = 1e-4 }', '"mnist1d-cnn"', '"mnist1d-cn"',
                     '{ hidden = [64] }', '{ hidden = [0] }', '{ channels = 0 }', '{ channels = "x" }',
                     '"hyperband"', '"median"']),
)
keys = st.one_of(st.sampled_from(ALL_KEYS), st.text(min_size=1, max_size=8).map(toml_string),
                 st.sampled_from(["seeds ", "Seeds", "seed_", "trails", "epoch"]).map(toml_string))


REGULARIZERS = ['"baseline"', '"ssc"', '"nope"', "3"]


@st.composite
def spec_documents(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from([*SECTIONS, "tune.lr", "nonsense", "evaluate.arms"]))
        if section == "evaluate.arms":
            for _ in range(draw(st.integers(0, 3))):
                lines.append("[[evaluate.arms]]")
                name = draw(st.sampled_from(["baseline", "ssc", "a", "a", ""]))
                lines.append(f"name = {toml_string(name)}")
                lines.append(f"regularizer = {draw(st.sampled_from(REGULARIZERS))}")
                if draw(st.booleans()):
                    lines.append(f'from = {toml_string(draw(st.sampled_from(["a", "ssc", "missing", name])))}')
                if draw(st.booleans()):
                    lines.append(f"params = {draw(scalars)}")
            continue
        lines.append(f"[{section}]")
        present: set[str] = set()
        for _ in range(draw(st.integers(0, 4))):
            key = draw(st.sampled_from(SECTIONS.get(section, ALL_KEYS)) if draw(st.booleans()) else keys)
            if key in present:
                continue  # a repeated key is malformed TOML; that case is drawn below on purpose
            present.add(key)
            lines.append(f"{key} = {draw(scalars)}")
    if draw(st.integers(0, 9)) == 0:
        lines.append(draw(st.text(max_size=20)))  # sometimes not TOML at all
    return "\n".join(lines) + "\n"


@FUZZ
@given(doc=spec_documents())
def test_any_spec_document_is_accepted_or_refused_with_a_spec_error(tmp_path_factory, doc):
    path = tmp_path_factory.mktemp("spec") / "spec.toml"
    path.write_bytes(doc.encode("utf-8", errors="replace"))  # drawn text may hold lone surrogates
    try:
        # as the CLI builds it: the workload's own defaults beneath the file, its arguments filled in
        spec = task.normalise(build_spec(path, beneath=task.spec_defaults))
    except registry.PluginError as exc:  # an unknown workload: the list and the closest name
        assert str(exc).startswith("unknown workload") and "\n" not in str(exc), str(exc)
        return
    except SpecError as exc:
        message = str(exc)
        if message.startswith("invalid run spec"):  # a schema error: every line after the first names a field
            fields = message.splitlines()[1:]
            assert fields and all(":" in line for line in fields), message
        else:  # the file itself: missing, not UTF-8, not TOML
            assert str(path) in message, message
        return
    assert isinstance(spec, RunSpec)


def test_the_cli_refuses_a_fuzzed_spec_in_one_line_and_writes_nothing(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[evaluate]\nseeds = nan\n[[evaluate.arms]]\nname = "a"\nregularizer = "ssc"\nfrom = "x"\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["evaluate", "--spec", str(spec), "--out", str(out)])
    assert res.exit_code == 2 and "Traceback" not in res.output and "evaluate.seeds" in res.output
    assert not out.exists()


@pytest.fixture(scope="module")
def valid_results(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("valid")
    spec = out / "spec.toml"
    spec.write_text('[[evaluate.arms]]\nname = "baseline"\nregularizer = "baseline"\n'
                    'params = { lr = 5e-3, weight_decay = 1e-3 }\n'
                    '[[evaluate.arms]]\nname = "b2"\nregularizer = "baseline"\n'
                    'params = { lr = 4e-3, weight_decay = 1e-3 }\n')
    res = CliRunner().invoke(app, ["evaluate", "--spec", str(spec), "--seeds", "2", "--epochs", "1",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    return (out / "evaluate.json").read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_results_files_are_refused_with_a_results_error(tmp_path_factory, valid_results, data):
    raw = bytearray(valid_results)
    how = data.draw(st.sampled_from(["truncate", "flip", "version", "kind", "shape", "huge"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        doc = json.loads(valid_results)
        if how == "version":
            doc["schema_version"] = data.draw(st.one_of(st.integers(), st.text(), st.none(), st.booleans()))
        elif how == "kind":
            doc["kind"] = data.draw(st.text(max_size=8))
        elif how == "shape":
            path = data.draw(st.sampled_from(["arms", "spec", "provenance", "comparisons", "reference"]))
            doc[path] = data.draw(st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)))
        else:
            doc["arms"] = doc["arms"] * 200
        raw = bytearray(json.dumps(doc).encode())
    path = tmp_path_factory.mktemp("damaged") / "evaluate.json"
    path.write_bytes(bytes(raw))
    try:
        loaded = results.load(path, EvaluateResult)
    except ResultsError as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(loaded, EvaluateResult)  # a flip inside a number can leave a valid file


# Every generated password starts and ends with a marker that no message holds, so a leak of any
# part of it (the head, or the tail after a raw "@") is seen without mistaking a common substring.
HEAD, TAIL = "Qz7", "7zQ"
PASSWORDS = st.builds(lambda core: f"{HEAD}{core}{TAIL}", st.text(max_size=12))


@FUZZ
@given(url=st.one_of(
    st.text(max_size=30),
    st.builds(lambda s, rest: f"{s}://{rest}", st.sampled_from(["mysql", "sqlite", "postgres", "postgresql",
                                                                 "postgresql+psycopg", "postgresql+psycopg2", "",
                                                                 "redis", "sqlite+pysqlite"]),
              st.text(max_size=20)),
    st.builds(lambda pw: f"postgresql+psycopg://user:{pw}@127.0.0.1:1/db", PASSWORDS),
    st.builds(lambda s, pw, enc: f"{s}://user:{quote(pw, safe='') if enc else pw}@127.0.0.1:1/db?sslmode=disable",
              st.sampled_from(["postgres", "postgresql", "mysql", "redis"]), PASSWORDS, st.booleans()),
    st.builds(lambda pw: f"postgresql+psycopg://user@127.0.0.1:1/db?password={quote(pw, safe='')}", PASSWORDS),
))
def test_any_storage_url_opens_or_is_refused_and_no_password_is_ever_shown(tmp_path_factory, url):
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:////nonexistent-folder/" + url[len("sqlite:///"):]  # never create files in the checkout
    shown = [] if redact.unsafe(url) else [redact.command_line(["sscbench", "tune", "ssc", "--storage", url])]
    try:  # the effective spec, as every results file and job record holds it
        spec = RunSpec(storage={"url": url})
        shown += [spec.model_dump_json(), repr(spec), json.dumps(storage_job_record(spec))]
    except ValidationError as exc:
        assert redact.unsafe(url)  # refused: it could not be masked
        shown.append(format_validation(exc, "options"))
    try:
        storage = open_storage(url)
    except StorageError as exc:
        message = str(exc)
        assert "\n" not in message.strip() and message.startswith("storage URL ")
        shown.append(message)
    else:
        assert storage.url  # only in-memory or existing-folder SQLite URLs open
        shown.append(storage.masked)
    if HEAD in url:
        for text in shown:
            assert HEAD not in text and TAIL not in text, text


def storage_job_record(spec: RunSpec) -> dict:
    return job_record({"kind": "tune", "spec": json.loads(spec.model_dump_json())})


_DIFFS = st.one_of(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=12),  # NaN, infinities, huge, tiny
    st.builds(lambda v, n: [v] * n, st.floats(-1, 1), st.integers(0, 12)),  # constant (sd 0)
    st.lists(st.floats(-1e300, 1e300), min_size=1, max_size=1),  # a single replicate
    st.lists(st.floats(-0.05, 0.05), max_size=12),
)


@FUZZ
@given(d=_DIFFS, min_n=st.integers(2, 6), extra=st.integers(0, 6), margin=st.floats(1e-6, 10), k=st.integers(1, 8),
       batch=st.integers(1, 4), complete=st.booleans())
def test_any_sequence_of_differences_is_decided_or_refused_without_a_warning(d, min_n, extra, margin, k, batch,
                                                                            complete):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            r = sequential.sequential(d, min_n=min_n, max_n=min_n + extra, margin=margin, comparisons=k, batch=batch,
                                      complete=complete, p_star=0.01)
        except ValueError as exc:
            assert "finite" in str(exc) and not all(math.isfinite(x) for x in d[:min_n + extra])
            return
    assert r.decision in (None, *sequential.DECISIONS)
    assert r.decision is not None or (not complete and len(d) < min_n + extra)
    assert all(min_n <= look.n <= min(len(d), min_n + extra) for look in r.looks)
    for look in r.looks:
        assert not any(math.isnan(v) for v in (look.mean_diff, look.rci_low, look.rci_high))
        assert look.rci_low <= look.mean_diff <= look.rci_high
    if r.decision in ("better", "worse", "equivalent"):
        assert r.replicates_used == r.looks[-1].n


def test_fuzz_target_runs_thousands_of_cases():
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    assert "SSCBENCH_FUZZ_EXAMPLES=" in makefile and "tests/test_fuzz.py" in makefile
