"""The report page: one self-contained HTML file from a results file.

What it is: pure functions from typed results (a study, a comparison, an evaluation or tunings) to
one HTML string, through the jinja2 template ``report.html.j2`` beside this module, every value
autoescaped (a name holding ``<script>`` reads as text). Figures are inline PNG (data URIs) with alt
text; there is no script, font, stylesheet or image from anywhere else, so the page reads from disk
with no network. The page is a function of the results alone (no generation time), so the same
file always gives the same page, byte for byte, on one machine.
What it is not: a server, or a place that computes results: every number comes from the models.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from sscbench.engine.host import CpuInfo
from sscbench.output import plot, render
from sscbench.output.render import pct
from sscbench.output.results import (
    CompareResult,
    EvaluateResult,
    Provenance,
    StudyCell,
    StudyResult,
    TuneResult,
    WorkloadsCompareResult,
)

#: The seed experiment's own claim, as its write-up states it (one tuning run per arm, 5 seeds).
SEED_CLAIM = {
    "source": "the seed experiment (SSC against AdamW on mnist1d, a 3-layer MLP, Optuna 30 trials, 5 seeds)",
    "baseline": "73.80% ± 1.29%",
    "ssc": "74.19% ± 0.79%",
    "claim": "SSC achieved a slightly higher mean test accuracy and a lower spread over seeds; the write-up "
             "concludes that it improves generalization on mnist1d.",
}

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def points(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.2f}"


@dataclass(frozen=True)
class Figure:
    src: str
    alt: str


def _anchor(k: int, *names: str) -> str:
    """A page-unique id readable in the address bar (names reduced to letters, digits and dashes)."""
    return "-".join(["c", str(k), *(re.sub(r"[^A-Za-z0-9]+", "-", n).strip("-") or "x" for n in names)])


def _cpu(cpu: CpuInfo | None) -> str:
    return "unknown" if cpu is None else (f"{cpu.model_name} (vendor {cpu.vendor}, family {cpu.family}, model "
                                          f"{cpu.model}, {cpu.simd}); torch kernels {cpu.torch_kernels}")


def replicates_computed(result: CompareResult) -> str:
    """Which CPUs computed a comparison's replicates, and how many this run read from checkpoints instead."""
    by_cpu = Counter(_cpu(rec.cpu) for rec in result.replicates)
    where = "; ".join(f"{n} on {cpu}" for cpu, n in by_cpu.most_common())
    reused = len(result.reused_replicates)
    if reused == len(result.replicates):
        run = "This run trained none of them: each was read from its checkpoint."
    elif reused:
        run = f"This run read {reused} from checkpoints and trained the rest."
    else:
        run = "All trained by this run."
    return f"{len(result.replicates)} replicates: {where}. {run}"


def _provenance_rows(label: str, p: Provenance, result: CompareResult | None = None) -> dict[str, Any]:
    return {
        "label": label, "command": p.command, "wall": f"{p.wall_seconds:,.0f} s", "started": p.started,
        "versions": f"sscbench {p.sscbench}, torch {p.torch}, optuna {p.optuna}, Python {p.python}",
        "git": p.git_revision or "(not a git checkout)", "platform": p.platform, "device": p.device,
        "threads": p.threads, "cpu": _cpu(p.cpu),
        "replicates": replicates_computed(result) if result is not None and result.replicates else None,
    }


def _method(result: CompareResult) -> dict[str, Any]:
    spec = result.spec
    return {
        "workload": spec.workload.name, "args": ", ".join(f"{k} = {v}" for k, v in spec.workload.args.items()),
        "trials": spec.tune.trials, "tune_epochs": spec.tune.epochs, "pruner": spec.tune.pruner,
        "lr": f"{spec.tune.lr.low:g} to {spec.tune.lr.high:g}",
        "weight_decay": f"{spec.tune.weight_decay.low:g} to {spec.tune.weight_decay.high:g}",
        "seeds": spec.evaluate.seeds, "epochs": spec.evaluate.epochs, "batch_size": spec.train.batch_size,
        "covers": result.covers, "derivation": result.derivation,
    }


def _replicate_tables(result: CompareResult, arm: str) -> dict[str, Any]:
    """Per replicate: the arm's and the reference's tuned values and per-seed accuracies."""
    ref = result.reference
    regs = {a.name: a.regularizer for a in result.spec.evaluate.arms}
    rows = []
    for rec in result.replicates:
        mine = next((a for a in rec.arms if a.name == arm), None)
        theirs = next((a for a in rec.arms if a.name == ref), None)
        picks = {p.regularizer: p for p in rec.tuning}
        rows.append({
            "index": rec.index, "data": render.replicate_data(result, rec.index, rec.data_seed),
            "trained": mine is not None,
            "params": render.fmt_params(mine.params) if mine else (render.fmt_params(picks[regs[arm]].params)
                                                                    if regs.get(arm) in picks else "-"),
            "ref_params": render.fmt_params(theirs.params) if theirs else "-",
            "seeds": " ".join(pct(v) for v in mine.test_accuracy) if mine else "not trained (decided)",
            "ref_seeds": " ".join(pct(v) for v in theirs.test_accuracy) if theirs else "-",
            "diff": points(mine.score - theirs.score) if mine and theirs and mine.score is not None
            and theirs.score is not None else "-",
        })
    return {"rows": rows}


def _cell_view(k: int, cell: StudyCell, result: CompareResult) -> dict[str, Any]:
    word = render.cell_word(cell)
    view: dict[str, Any] = {
        "id": _anchor(k, cell.arm, cell.workload), "arm": cell.arm, "workload": cell.workload, "word": word,
        "status": cell.status, "reason": cell.reason, "numbers": render.cell_numbers(cell),
        "mean": points(cell.mean_diff), "interval": render.interval(cell.low, cell.high), "n": cell.replicates,
        "rule": cell.rule or "", "tuning": f"{cell.tuning_model_epochs:,}",
        "evaluation": f"{cell.evaluation_model_epochs:,}", "figure": None, "tables": None, "sequential": None,
    }
    comparison = next((c for c in result.comparisons if c.arm == cell.arm), None)
    if comparison is None:
        return view
    view["figure"] = Figure(_data_uri(plot.png(plot.cell_figure(result, cell.arm))),
                            f"{cell.arm} against {result.reference} on {cell.workload}: the paired difference of "
                            f"each replicate, the interval over replicates, and the tuned learning rate and weight "
                            f"decay of both arms across replicates")
    view["tables"] = _replicate_tables(result, cell.arm)
    seq = comparison.sequential
    if seq is not None:
        view["sequential"] = {
            "looks": [{"n": look.n, "mean": points(look.mean_diff),
                       "interval": render.interval(look.rci_low, look.rci_high)} for look in seq.looks],
            "p_star": f"{seq.p_star:.4g}", "sign": seq.sign_test.decision or "no decision",
            "agrees": {True: "agrees", False: "disagrees", None: "could not decide yet"}[seq.agrees_with_sign_test],
        }
    return view


def study_page(result: StudyResult) -> str:
    """The study's page: the matrix, each cell's evidence, the method, provenance and the seed's claim."""
    by_workload = dict(zip(result.workloads, result.results, strict=True))
    cells = [_cell_view(k, c, by_workload[c.workload]) for k, c in enumerate(result.cells)]
    index = {(c["arm"], c["workload"]): c for c in cells}
    matrix = [{"arm": arm, "cells": [index[(arm, w)] for w in result.workloads]} for arm in result.arms]
    ssc = [index[("ssc", w)] for w in result.workloads if ("ssc", w) in index]
    b = result.budget
    rule = next((c.rule for c in result.cells if c.rule), "")
    return _ENV.get_template("report.html.j2").render(
        kind="study", title=f"sscbench study: {len(result.arms)} arms against {result.reference} on "
                            f"{len(result.workloads)} workloads",
        reference=result.reference, workloads=result.workloads, matrix=matrix, cells=cells, budget=b,
        total={"replicates": result.total.replicates, "model_epochs": f"{result.total.model_epochs:,}",
               "tune": f"{result.total.tune_seconds:,.0f} s", "evaluate": f"{result.total.evaluate_seconds:,.0f} s",
               "wall": f"{result.provenance.wall_seconds:,.0f} s"},
        rule=rule, methods=[_method(r) for r in result.results], seed=SEED_CLAIM, ssc=ssc,
        provenance=[_provenance_rows("study", result.provenance)]
        + [_provenance_rows(f"compare on {w}", r.provenance, r) for w, r in by_workload.items()],
        figure=None, tables=[])


def _simple(kind: str, title: str, figure: Figure | None, tables: list[dict[str, Any]],
            provenance: list[dict[str, Any]], methods: list[dict[str, Any]]) -> str:
    return _ENV.get_template("report.html.j2").render(
        kind=kind, title=title, figure=figure, tables=tables, provenance=provenance, methods=methods,
        seed=SEED_CLAIM, matrix=[], cells=[], ssc=[], workloads=[], reference="", budget=None, total=None, rule="")


def _rows(header: list[str], rows: list[list[str]], caption: str) -> dict[str, Any]:
    return {"header": header, "rows": rows, "caption": caption}


def _comparison_rows(result: CompareResult) -> dict[str, Any]:
    rows = [[c.arm, points(c.mean_diff), render.interval(c.ci_low if c.sequential is None else c.sequential.rci_low,
                                                          c.ci_high if c.sequential is None
                                                          else c.sequential.rci_high),
             str(c.replicates if c.sequential is None else c.sequential.replicates_used), c.verdict]
            for c in result.comparisons]
    return _rows(["arm", f"diff vs {result.reference} (points)", "interval", "n", "decision"], rows,
                 next((c.rule for c in result.comparisons if c.rule), "") or "")


def _replicate_rows(result: CompareResult, caption: str = "") -> dict[str, Any]:
    """Every replicate: the data it trained and tested on, each arm's score and the difference with the
    reference ("-" where an arm was not trained: its comparisons had decided)."""
    names = [a.name for a in result.arms]
    diffs = [c.arm for c in result.comparisons]
    rows = []
    for rec in result.replicates:
        scores = {a.name: a.score for a in rec.arms}
        ref = scores.get(result.reference or "")
        rows.append([str(rec.index), render.replicate_data(result, rec.index, rec.data_seed),
                     *(pct(scores.get(n)) for n in names),
                     *(points(scores[n] - ref) if scores.get(n) is not None and ref is not None else "-"
                       for n in diffs)])
    return _rows(["replicate", "data", *names, *(f"{n} − {result.reference}" for n in diffs)], rows,
                 caption or f"every replicate: mean test accuracy over {result.spec.evaluate.seeds} seeds")


def compare_page(result: CompareResult) -> str:
    arms = _rows(["arm", "mean score", "sd over replicates", "replicates"],
                 [[a.name, pct(a.mean), pct(a.std_ddof1), str(sum(s is not None for s in a.scores))]
                  for a in result.arms], f"covers {result.covers}")
    figure = Figure(_data_uri(plot.png(plot.compare_figure(result))),
                    "per-replicate paired differences, probability of outperforming, tuned hyperparameters and "
                    "the sequential intervals of every arm against the reference")
    return _simple("compare", f"sscbench compare on {result.spec.workload.name}", figure,
                   [arms, _comparison_rows(result), _replicate_rows(result)],
                   [_provenance_rows("compare", result.provenance, result)],
                   [_method(result)])


def workloads_page(result: WorkloadsCompareResult) -> str:
    tables = [table for w, r in zip(result.workloads, result.results, strict=True)
              for table in (dict(_comparison_rows(r), caption=f"{w}: " + _comparison_rows(r)["caption"]),
                            _replicate_rows(r, f"{w}: every replicate, mean test accuracy over "
                                               f"{r.spec.evaluate.seeds} seeds"))]
    figure = Figure(_data_uri(plot.png(plot.workloads_figure(result))),
                    "per-replicate paired differences of every arm, one panel per workload")
    return _simple("compare", "sscbench compare over workloads", figure, tables,
                   [_provenance_rows("compare --workloads", result.provenance)]
                   + [_provenance_rows(f"replicates on {w}", r.provenance, r)
                      for w, r in zip(result.workloads, result.results, strict=True)],
                   [_method(r) for r in result.results])


def evaluate_page(result: EvaluateResult) -> str:
    arms = _rows(["arm", "mean ± std", "per seed", "hyperparameters"],
                 [[a.name, f"{pct(a.mean)} ± {pct(a.std)}", " ".join(pct(v) for v in a.test_accuracy),
                   render.fmt_params(a.params)] for a in result.arms], f"covers {result.covers}")
    comps = _rows(["arm", f"diff vs {result.reference} (points)", "95% CI", "verdict"],
                  [[c.arm, points(c.mean_diff), render.interval(c.ci_low, c.ci_high), c.verdict]
                   for c in result.comparisons], "paired over seeds")
    figure = Figure(_data_uri(plot.png(plot.figure(result))),
                    "per-seed test accuracy, training curves, accuracy under shifts and saliency spectra per arm")
    return _simple("evaluate", f"sscbench evaluate on {result.spec.workload.name}", figure, [arms, comps],
                   [_provenance_rows("evaluate", result.provenance)], [])


def tune_page(tunes: list[TuneResult]) -> str:
    tables = []
    for t in tunes:
        rows = sorted(((s.study_name, tr) for s in t.studies for tr in s.trials if tr.state == "COMPLETE"),
                      key=lambda r: -(r[1].value or 0))
        tables.append(_rows(["study", "trial", "validation accuracy", "hyperparameters"],
                            [[s, str(tr.number), pct(tr.value), render.fmt_params(tr.params)] for s, tr in rows[:10]],
                            f"tuning {t.regularizer}: the best completed trials"))
    return _simple("tune", "sscbench tune", None, tables, [_provenance_rows(f"tune {t.regularizer}", t.provenance)
                                                          for t in tunes], [])
