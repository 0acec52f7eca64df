"""`sscbench report --html`: one self-contained page per results folder, escaped, and the same every time."""

from __future__ import annotations

import json
import re

import pytest
from conftest import ok
from test_study import tuned  # noqa: F401  (a shared fixture: the study runs once)

from sscbench.output import html, results
from sscbench.output.results import StudyResult

#: Anything that would reach past the page: a remote or relative resource, a stylesheet, a font, a script.
OUTSIDE = re.compile(r"""(src|href)\s*=\s*["'](?!data:|#)|url\(|@import|<link|<script|<iframe|<object""", re.I)


def test_the_study_page_is_self_contained_and_regenerates_byte_for_byte(tuned):  # noqa: F811
    out, _ = tuned
    page = (out / "report.html").read_text()
    assert not OUTSIDE.search(page), OUTSIDE.search(page)
    assert page.count("data:image/png;base64,") == 4  # one figure per cell, each with alt text
    assert len(re.findall(r'<img src="data:image/png;base64,[^"]+" alt="[^"]{20,}">', page)) == 4
    assert html.study_page(results.load(out / "study.json", StudyResult)) == page


def test_the_page_states_the_method_provenance_and_the_seeds_claim(tuned):  # noqa: F811
    out, _ = tuned
    page = (out / "report.html").read_text()
    study = results.load(out / "study.json", StudyResult)
    for section in ("matrix", "seed", "cells", "method", "provenance"):
        assert f'<section id="{section}">' in page
    assert "74.19% ± 0.79%" in page and "73.80% ± 1.29%" in page  # the seed's own numbers
    assert study.provenance.cpu.model_name in page and study.provenance.git_revision in page
    assert "split over 4 comparisons" in page and "data.seed + r" in page
    assert '<th scope="col">mnist1d-mlp</th><th scope="col">mnist1d-cnn</th>' in page


def test_names_and_texts_holding_markup_render_as_text(tuned, tmp_path):  # noqa: F811
    out, _ = tuned
    raw = json.loads((out / "study.json").read_text())
    evil = '<script>window.hacked = 1</script><img src=x onerror="window.hacked = 2">'
    raw["arms"][0] = evil
    for c in raw["cells"]:
        if c["arm"] == "ssc":
            c["arm"] = evil
    for res in raw["results"]:
        res["derivation"]["data_seed"] = evil
        for comparison in res["comparisons"]:
            if comparison["arm"] == "ssc":
                comparison["arm"] = evil
        for arm in res["spec"]["evaluate"]["arms"]:
            if arm["name"] == "ssc":
                arm["name"] = evil
        for rec in res["replicates"]:
            for arm in rec["arms"]:
                if arm["name"] == "ssc":
                    arm["name"] = evil
    (tmp_path / "study.json").write_text(json.dumps(raw))
    ok("report", "--html", "--out", tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and "onerror=" not in page.replace("onerror=&#34;", "")
    assert "&lt;script&gt;window.hacked = 1&lt;/script&gt;" in page


@pytest.mark.parametrize("kind", ["evaluate", "compare", "tune"])
def test_every_kind_of_results_folder_gets_a_self_contained_page(kind, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text("[data]\nnum_samples = 600\nvalidation_size = 100\n")
    if kind == "tune":
        ok("tune", "baseline", "--spec", spec, "--trials", 2, "--epochs", 1, "--out", tmp_path)
    elif kind == "evaluate":
        spec.write_text(spec.read_text() + '[[evaluate.arms]]\nname = "baseline"\nregularizer = "baseline"\n'
                        'params = { lr = 5e-3, weight_decay = 1e-3 }\n')
        ok("evaluate", "--spec", spec, "--seeds", 2, "--epochs", 1, "--out", tmp_path)
    else:
        ok("compare", "--spec", spec, "--replicates", 2, "--trials", 2, "--tune-epochs", 1, "--seeds", 2,
           "--epochs", 1, "--out", tmp_path)
    ok("report", "--html", "--out", tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert not OUTSIDE.search(page) and "<table>" in page and '<section id="provenance">' in page
    if kind != "tune":
        assert "data:image/png;base64," in page
    if kind == "compare":  # every replicate, with the data it drew
        assert "<td>0</td><td>drawn, data seed 42</td>" in page and "<td>1</td><td>drawn, data seed 43</td>" in page


def test_an_archive_comparison_says_which_replicate_is_the_archives_split(tmp_path):
    """On the committed Crop comparison: replicate 0 is the archive's own split, the rest resamples, in the
    page's table of replicates and in the terminal's caption."""
    from pathlib import Path

    crop = Path(__file__).resolve().parent.parent / "docs" / "runs" / "ucr-crop" / "compare.json"
    (tmp_path / "compare.json").write_bytes(crop.read_bytes())
    shown = ok("report", "--html", "--out", tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert "<td>0</td><td>the archive&#39;s split</td><td>65.88%</td><td>66.39%</td><td>+0.51</td>" in page
    assert "<td>9</td><td>resample, data seed 51</td><td>66.26%</td><td>66.47%</td><td>+0.21</td>" in page
    assert "drawn, data seed" not in page
    caption = " ".join(shown.output.split())
    assert "Replicate 0: the archive's own split; replicate r > 0: a stratified resample, data seed 42 + r." \
        in caption, caption


def test_a_cell_the_plugin_cannot_run_reads_n_a_with_its_reason(tuned):  # noqa: F811
    from sscbench.stages import study as study_mod

    out, _ = tuned
    done = results.load(out / "study.json", StudyResult)
    plan = study_mod.Plan(["baseline", *done.arms], done.workloads,
                          {("ssc", "mnist1d-cnn"): "needs <1-D> inputs"})
    page = html.study_page(study_mod.assemble(plan, dict(zip(done.workloads, done.results, strict=True)),
                                              done.provenance))
    assert '<td class="cell n/a"><a href="#c-2-ssc-mnist1d-cnn"><span class="word">n/a</span></a></td>' in page
    assert "Not run: needs &lt;1-D&gt; inputs" in page and "split over 3" in page


def test_the_page_names_the_cpus_that_computed_the_replicates_and_what_the_run_only_read(tuned):  # noqa: F811
    out, _ = tuned
    raw = json.loads((out / "study.json").read_text())
    first = raw["results"][0]
    # as if the study had been regenerated on another host from checkpoints computed elsewhere
    first["replicates"][0]["cpu"] = dict(first["replicates"][0]["cpu"], model_name="Elsewhere CPU", model=9999)
    first["reused_replicates"] = [rec["index"] for rec in first["replicates"]]
    page = html.study_page(StudyResult.model_validate(raw))
    n = len(first["replicates"])
    assert f"{n} replicates: " in page and "1 on Elsewhere CPU (vendor" in page and "model 9999" in page
    assert f"{n - 1} on {raw['provenance']['cpu']['model_name']}" in page
    assert "This run trained none of them: each was read from its checkpoint." in page
    first["reused_replicates"] = [first["replicates"][0]["index"]]
    assert "This run read 1 from checkpoints and trained the rest." in html.study_page(StudyResult.model_validate(raw))
    fresh = html.study_page(results.load(out / "study.json", StudyResult))
    assert "Elsewhere CPU" not in fresh and "This run trained none of them" not in fresh
    assert "All trained by this run." in fresh
