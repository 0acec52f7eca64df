"""The report in a real browser: headless Chromium (Debian's `chromium`, installed by `make test`),
driven by playwright. The page loads from disk with no console error and no request beyond itself,
its matrix has a row per arm and a column per workload, and a screenshot is not blank.

Without Chromium these tests skip, saying why, except under CI=true, where that is a failure."""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
from conftest import ok
from test_study import tuned  # noqa: F401  (a shared fixture: the study runs once)

from sscbench.output import results
from sscbench.output.results import StudyResult

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no chromium under CI=true: `make test` installs it with apt-get (tools/ensure-chromium.sh)")
        pytest.skip("no chromium: run the suite through `make test`, which installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def visit(browser, path):
    """The page at ``path``, opened from disk; every console error and every request it made."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    seen = {"errors": [], "requests": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


def test_the_study_page_loads_offline_with_its_matrix_and_is_not_blank(browser, tuned):  # noqa: F811
    out, _ = tuned
    study = results.load(out / "study.json", StudyResult)
    page, seen = visit(browser, out / "report.html")
    assert seen["errors"] == []
    assert all(url == (out / "report.html").as_uri() or url.startswith("data:") for url in seen["requests"]), \
        seen["requests"]
    header = page.locator("#matrix thead th").all_inner_texts()
    assert header == ["arm", *study.workloads]
    rows = page.locator("#matrix tbody tr")
    assert rows.count() == len(study.arms)
    for k, arm in enumerate(study.arms):
        assert rows.nth(k).locator("th").inner_text() == arm
        words = [w.split("\n")[0].strip().lower() for w in rows.nth(k).locator("td").all_inner_texts()]
        assert len(words) == len(study.workloads)
        assert words == [c.decision for c in study.cells if c.arm == arm]
    assert page.locator("img").count() == len(study.cells)
    assert all(page.locator("img").nth(k).evaluate("i => i.complete && i.naturalWidth > 100")
               for k in range(page.locator("img").count()))
    import matplotlib.image

    shot = matplotlib.image.imread(io.BytesIO(page.screenshot()), format="png")[..., :3]
    ink = (shot < 0.9).any(axis=-1).mean()  # share of pixels that are not near-white
    assert 0.02 < ink < 0.9 and len(np.unique(shot.reshape(-1, 3), axis=0)) > 50
    page.close()


def test_markup_in_a_name_shows_as_text_and_never_runs(browser, tuned, tmp_path):  # noqa: F811
    out, _ = tuned
    raw = json.loads((out / "study.json").read_text())
    evil = "<script>window.hacked = 1</script>"
    raw["workloads"][0] = evil
    for c in raw["cells"]:
        if c["workload"] == "mnist1d-mlp":
            c["workload"] = evil
    (tmp_path / "study.json").write_text(json.dumps(raw))
    ok("report", "--html", "--out", tmp_path)
    page, seen = visit(browser, tmp_path / "report.html")
    assert seen["errors"] == [] and page.evaluate("() => window.hacked") is None
    assert page.locator("#matrix thead th").nth(1).inner_text() == evil
    page.close()
