"""Rich tables of plugins and results (built here, printed by the CLI).

What it is: pure functions from typed results to ``rich.table.Table`` objects.
What it is not: a printer; nothing here writes to the terminal.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sscbench.contracts import registry
from sscbench.output.results import (
    CompareResult,
    EvaluateResult,
    StudyCell,
    StudyResult,
    TuneResult,
    WorkloadsCompareResult,
)
from sscbench.spec import DataSpec


class _Table(Table):
    """A rich ``Table`` that, squeezed below its natural width, keeps every column at least as wide as its
    longest word (``_fit`` records it as ``min_width``) and shares the rest of the width out in proportion
    to what each column would like more. Rich on its own narrows the widest columns first, folding a
    verdict or a number in two (or, given minimum widths, overflows the terminal and gets cropped).
    Where even the longest words do not fit, the minimum widths are dropped: words are folded, never cut."""

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        natural = super()._calculate_column_widths(console, options)
        budget = options.max_width
        if sum(natural) <= budget:
            return natural
        measured = [self._measure_column(console, options, column) for column in self.columns]
        lows = [m.minimum for m in measured]
        highs = [max(m.maximum, m.minimum) for m in measured]
        spare = budget - sum(lows)
        if spare < 0:  # the words themselves do not fit: fold them, as rich does without minimum widths
            minimums = [column.min_width for column in self.columns]
            try:
                for column in self.columns:
                    column.min_width = None
                return super()._calculate_column_widths(console, options)
            finally:
                for column, minimum in zip(self.columns, minimums, strict=True):
                    column.min_width = minimum
        wants = [h - lo for lo, h in zip(lows, highs, strict=True)]
        total = sum(wants) or 1
        widths = [lo + min(w, spare * w // total) for lo, w in zip(lows, wants, strict=True)]
        for k in sorted(range(len(widths)), key=lambda k: wants[k] - (widths[k] - lows[k]), reverse=True):
            if sum(widths) >= budget:  # hand out what integer division left over
                break
            widths[k] += min(highs[k] - widths[k], budget - sum(widths))
        return widths


def _table(title: str, *columns: str) -> Table:
    """A table whose cells wrap at spaces and line breaks and fold a word only where it is wider than its
    column: nothing is ever cut with an ellipsis, at any width. With ``_fit`` applied once its rows are
    in, no word is folded either while the longest words fit the terminal (the results' tables are laid
    out, values stacked in a cell and headers short, so that they do at 80 columns)."""
    table = _Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")
    return table


def _fit(table: Table) -> Table:
    """Every column at least as wide as its longest word (header included)."""
    for column in table.columns:
        words = [w for cell in (column.header, *column.cells) for w in Text.from_markup(str(cell)).plain.split()]
        column.min_width = max((len(w) for w in words), default=1)
    return table


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in params.items())


def plugins_table() -> Table:
    table = _table("Regularizer plugins (entry-point group sscbench.regularizers)",
                   "name", "distribution", "description", "hyperparameters (default; search range)", "inputs")
    for name, info in registry.discover().items():
        try:
            plugin = registry.load(name)
        except registry.PluginError as exc:
            failure = f"[red]fails to load: {escape(str(exc))}[/red]"
            table.add_row(name, f"{info.distribution} {info.version}", failure, "", "")
            continue
        hp = []
        for key, default in plugin.defaults().items():
            rng = plugin.search_space.get(key)
            where = f"[{rng.low:g}, {rng.high:g}]{' log' if rng.log else ''}" if rng else "fixed"
            hp.append(f"{key} = {default:g}; {where}")
        inputs = "any" if plugin.input_rank is None else f"rank {plugin.input_rank}"
        table.add_row(name, f"{info.distribution} {info.version}", escape(plugin.description),
                      "\n".join(hp) or "(none: lr and weight_decay only)", inputs)
    return _fit(table)


def workloads_table() -> Table:
    """Every discovered workload: its description, arguments and what its models take and give."""
    table = _table("Workloads (entry-point group sscbench.workloads)",
                   "name", "package", "description", "arguments (default)", "sample shape / classes")
    for name, info in registry.WORKLOADS.discover().items():
        try:
            workload = registry.load_workload(name)
        except registry.PluginError as exc:
            table.add_row(name, f"{info.distribution} {info.version}",
                          f"[red]fails to load: {escape(str(exc))}[/red]", "", "")
            continue
        args = workload.Args()
        shape = workload.shape(args, DataSpec())
        listed = [f"{k} = {v}" for k, v in args.model_dump().items()]
        missing = workload.available()
        description = escape(workload.description) + (f"\n[red]unavailable: {escape(missing)}[/red]" if missing else "")
        table.add_row(name, f"{info.distribution} {info.version}", description,
                      escape("\n".join(listed)) or "(none)", f"{list(shape.input)} / {shape.classes}")
    return _fit(table)


def workloads_comparison_table(result: WorkloadsCompareResult) -> Table:
    """Does the gain survive a change of task? One section per workload, one row per arm."""
    table = _table("The same comparison on every workload (score = mean test accuracy over seeds)",
                   "workload / arm", "score (sd)", "diff vs ref [95% CI]", "P(A > B) [95% CI] / p (t)", "verdict")
    for name, res in zip(result.workloads, result.results, strict=True):
        comps = {c.arm: c for c in res.comparisons}
        table.add_row(f"[bold]{escape(name)}[/bold]", "", "", "", "")
        for k, arm in enumerate(res.arms):
            c = comps.get(arm.name)
            cells = (["reference", "", ""] if arm.name == res.reference else ["-", "-", "-"]) if c is None \
                else [_diff(c.mean_diff, c.ci_low, c.ci_high), f"{_p_outperform(c)}\np {_num(c.p_ttest)}",
                      _verdict(c)]
            table.add_row(f"  {escape(arm.name)}", f"{pct(arm.mean)}\n({pct(arm.std_ddof1)})", *cells,
                          end_section=k == len(res.arms) - 1)
    r = len(result.results[0].replicates) if result.results else 0
    table.caption = f"{r} replicate(s) per workload; verdicts as in `sscbench compare` (docs/statistics.md)."
    return _fit(table)


def contract_table(name: str, checks: list) -> Table:
    """One row per contract check: passed or the violation."""
    workloads = list(dict.fromkeys(c.workload for c in checks))
    table = _table(f"Contract checks of regularizer '{name}' on {len(workloads)} workload(s)",
                   "workload", "check", "result", "detail")
    for k, c in enumerate(checks):
        first = k == 0 or checks[k - 1].workload != c.workload
        last = k == len(checks) - 1 or checks[k + 1].workload != c.workload
        table.add_row(c.workload if first else "", c.check, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]",
                      escape(c.message), end_section=last)
    return _fit(table)


def tune_table(result: TuneResult, top: int = 5) -> Table:
    table = _table(f"Tuning '{result.regularizer}': best trials (validation accuracy)",
                   "study", "trial", "value", "hyperparameters")
    rows = [(s.study_name, t) for s in result.studies for t in s.trials if t.state == "COMPLETE"]
    rows.sort(key=lambda r: -r[1].value)
    for study, trial in rows[:top]:
        table.add_row(study, str(trial.number), pct(trial.value), fmt_params(trial.params))
    complete = sum(t.state == "COMPLETE" for s in result.studies for t in s.trials)
    pruned = sum(t.state == "PRUNED" for s in result.studies for t in s.trials)
    caption = f"{complete} completed trials in {len(result.studies)} study(ies)"
    if pruned:
        caption = f"{complete} completed and {pruned} pruned trials in {len(result.studies)} study(ies)"
    if result.budget is not None:
        caption += (f"; budget {result.budget.model_epochs:,} model-epochs, "
                    f"{result.budget.train_seconds:.1f} s training")
    table.caption = caption
    return _fit(table)


def evaluate_table(result: EvaluateResult) -> Table:
    """The seed's results table: mode, test accuracy mean +- std (ddof 0), best hyperparameters."""
    n = result.spec.evaluate.seeds
    table = _table(f"Test accuracy after {result.spec.evaluate.epochs} epochs, {n} seeds",
                   "arm", "test accuracy (mean ± std)", "std (ddof 1)", "per seed", "hyper- parameters")
    for arm in result.arms:
        mean_std = f"{pct(arm.mean)} ± {pct(arm.std)}"
        if arm.diverged:
            mean_std += f" ({len(arm.diverged)} diverged)"
        table.add_row(arm.name, mean_std, pct(arm.std_ddof1),
                      " ".join(pct(v) for v in arm.test_accuracy), fmt_params(arm.params))
    return _fit(table)


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{100 * low:+.2f}, {100 * high:+.2f}]"


def _diff(mean: float, low: float | None, high: float | None) -> str:
    """A difference in accuracy points over its interval (two lines, so it fits a narrow column)."""
    return f"{100 * mean:+.2f}\n{interval(low, high)}"


def _p_outperform(c: object) -> str:
    return f"{c.p_outperform:.2f} [{c.p_outperform_ci_low:.2f}, {c.p_outperform_ci_high:.2f}]"


def comparison_table(result: EvaluateResult) -> Table:
    """Paired statistics of every arm against the reference (differences in accuracy points)."""
    n = result.spec.evaluate.seeds
    table = _table(f"Paired comparison with '{result.reference}' over {n} seeds (alpha 0.05)",
                   "arm", "diff [95% CI]", "p: t / W", "Hedges g", "P(A > B)", "verdict", "seeds for 80% power")
    for c in result.comparisons:
        table.add_row(
            escape(c.arm), _diff(c.mean_diff, c.ci_low, c.ci_high), f"t {_num(c.p_ttest)}\nW {_num(c.p_wilcoxon)}",
            _num(c.hedges_g, ".2f"), f"{c.prob_improvement:.2f}", _colour(c.verdict),
            "-" if c.seeds_for_power is None else str(c.seeds_for_power),
        )
    caption = (f"CI: {result.comparisons[0].ci_method} bootstrap, {result.comparisons[0].ci_resamples} "
               "resamples; verdict from the paired t-test. " if result.comparisons else "")
    table.caption = f"{caption}Covers {result.covers}."
    return _fit(table)


def _colour(verdict: str) -> str:
    colour = {"better": "green", "worse": "red", "equivalent": "cyan"}.get(verdict, "yellow")
    return f"[{colour}]{verdict}[/{colour}]"


def _verdict(c: object) -> str:
    """A replicated comparison's verdict, with the replicates a sequential decision used."""
    seq = c.sequential
    if seq is None:
        return _colour(c.verdict)
    return f"{_colour(c.verdict)}\nat n = {seq.replicates_used}"


#: The width every results table is laid out to fit without folding a word: a terminal's, or rich's
#: assumption when the output goes to a file or a pipe.
DESIGN_WIDTH = 80


def _fits_wide(names: list[str]) -> bool:
    """Whether a column per arm (its score, "(sd 12.34%)" under it) fits ``DESIGN_WIDTH`` beside the "r" column."""
    return 5 + sum(max(len(n), 7) + 3 for n in names) + 1 <= DESIGN_WIDTH


def replicates_table(result: CompareResult) -> Table:
    """Each replicate's score per arm and its difference with the reference.

    What replicate r derives from its index (data seed, sampler seed, model seeds) is in the
    caption and, per replicate, in the JSON file.
    """
    title = f"Replicates: score = mean test accuracy over {result.spec.evaluate.seeds} seeds"
    names = [a.name for a in result.arms]
    diffs = {c.arm for c in result.comparisons}

    def cell(rec_scores: dict[str, float | None], name: str) -> str:
        a, b = rec_scores.get(name), rec_scores.get(result.reference or "")
        if name not in diffs:
            return pct(a)
        return f"{pct(a)}\n{'-' if a is None or b is None else f'{100 * (a - b):+.2f}'}"

    means = {a.name: a for a in result.arms}
    mean_diff = {c.arm: c.mean_diff for c in result.comparisons}
    wide = _fits_wide(names)
    if wide:
        table = _table(title, "r", *(escape(n) for n in names))
        for rec in result.replicates:
            scores = {a.name: a.score for a in rec.arms}
            table.add_row(str(rec.index), *(cell(scores, n) for n in names))
        table.add_row("mean", *(f"{pct(means[n].mean)}\n" + (f"{100 * mean_diff[n]:+.2f}\n" if n in mean_diff else "")
                                + f"(sd {pct(means[n].std_ddof1)})" for n in names), end_section=True)
    else:
        table = _table(title, "r", "arm", "score", f"− {escape(result.reference or '')}")
        for rec in result.replicates:
            scores = {a.name: a.score for a in rec.arms}
            for k, n in enumerate(names):
                lines = cell(scores, n).split("\n")
                table.add_row(str(rec.index) if k == 0 else "", escape(n), lines[0], lines[1] if len(lines) > 1 else "",
                              end_section=k == len(names) - 1)
        for n in names:
            table.add_row("mean", escape(n), f"{pct(means[n].mean)} (sd {pct(means[n].std_ddof1)})",
                          f"{100 * mean_diff[n]:+.2f}" if n in mean_diff else "")
    below = f", under each score its difference with '{escape(result.reference)}'" if result.reference else ""
    data = (f"Replicate 0: the archive's own split; replicate r > 0: a stratified resample, data seed "
            f"{result.spec.data.seed} + r. Replicate r: " if result.resampled
            else f"Replicate r: data seed {result.spec.data.seed} + r, ")
    table.caption = (f"{data}sampler seed "
                     f"{result.spec.tune.sampler_seed} + r, model seeds rN..rN+N-1 (N = {result.spec.evaluate.seeds})"
                     f"{below if wide else ''}."
                     + (" -: not trained (every comparison needing the arm had decided)."
                        if any(rec.not_trained for rec in result.replicates) else "") + _diverged(result))
    return _fit(table)


def replicate_data(result: CompareResult, index: int, data_seed: int) -> str:
    """Which data replicate ``index`` trained and tested on: the archive's own split (replicate 0 of an
    archive workload), a resample of the archive, or a new draw, with its data seed."""
    if not result.resampled:
        return f"drawn, data seed {data_seed}"
    return "the archive's split" if index == 0 else f"resample, data seed {data_seed}"


def _diverged(result: CompareResult) -> str:
    """Which arms diverged where, in words: a diverged seed is left out of its arm's score, and a replicate
    where every seed of an arm diverged is left out of that arm's comparison."""
    words = []
    for name in [a.name for a in result.arms]:
        seeds = [(rec.index, len(a.diverged), len(a.test_accuracy)) for rec in result.replicates for a in rec.arms
                 if a.name == name and a.diverged]
        if seeds:
            where = ", ".join(f"r{r}" + ("" if k == n else f" ({k} of {n})") for r, k, n in seeds)
            words.append(f"'{escape(name)}' diverged in {where}")
    return (" Diverged seeds (left out of the score; a replicate with none left is left out of the comparison): "
            + "; ".join(words) + ".") if words else ""


def replicated_comparison_table(result: CompareResult) -> Table:
    """The decision over replicates: difference, P(A > B), t-test, verdict, power, variance split."""
    r = len(result.replicates)
    over = "the replicates each decision used" if result.spec.compare.auto else f"{r} replicates"
    table = _table(f"Replicated comparison with '{result.reference}' over {over}",
                   "arm", "diff [95% CI] / two-level", "P(A > B) [95% CI]", "p (t)", "verdict",
                   "R for 80% power", "var. rep / seed")
    for c in result.comparisons:
        share = ("-" if c.variance_share_replicates is None
                 else f"{100 * c.variance_share_replicates:.0f}% /\n{100 * c.variance_share_seeds:.0f}%")
        table.add_row(
            escape(c.arm), _diff(c.mean_diff, c.ci_low, c.ci_high) + "\n" + interval(c.ci_two_level_low,
                                                                                        c.ci_two_level_high),
            _p_outperform(c), _num(c.p_ttest), _verdict(c),
            "-" if c.replicates_for_power is None else str(c.replicates_for_power), share,
        )
    gamma, margin = result.spec.compare.gamma, result.spec.compare.margin
    rule = ("Verdict: the sequential rule (next table)." if result.spec.compare.auto else
            f"Verdict: better / worse only when the paired t-test over replicates rejects at 0.05, the P(A > B) "
            f"interval excludes 0.5 and P(A > B) >= {gamma:g} (<= {1 - gamma:g}); equivalent when both one-sided "
            f"tests at ±{margin:g} points reject at 0.05; else inconclusive.")
    left_out = "".join(f" Left out of '{c.arm}': {'; '.join(c.left_out)}." for c in result.comparisons if c.left_out)
    table.caption = (f"{rule} Covers {result.covers}.{left_out}" + (f" Tuning: {result.budget_note}."
                                                                    if result.budget_note else ""))
    return _fit(table)


def sequential_table(result: CompareResult) -> Table:
    """``compare --replicates auto``: each comparison's decision, where it stopped, its repeated CI, the sign test."""
    comps = [c for c in result.comparisons if c.sequential is not None]
    table = _table(f"Sequential decisions against '{result.reference}' (differences in accuracy points)",
                   "arm", "decision", "mean diff [RCI]", "P(A > B)", "sign test")
    for c in comps:
        seq = c.sequential
        notes = []
        if seq.decision in ("better", "worse") and seq.within_margin:
            notes.append("by less than the margin")
        if seq.meaningful is False:
            notes.append(f"P(A > B) short of gamma {seq.gamma:g}")
        if c.after_stop:
            notes.append(f"+{len(c.after_stop)} after the stop (unused)")
        if c.left_out:
            notes.append(f"{len(c.left_out)} left out (diverged)")
        sign = seq.sign_test
        if sign.decision:
            sign_cell = f"{sign.decision} at n = {sign.n}"
        elif sign.earliest is None or sign.earliest > seq.replicates_used:
            sign_cell = "too few replicates" if sign.earliest is None else f"can decide from n = {sign.earliest}"
        else:
            sign_cell = f"no decision by n = {seq.replicates_used}"
        if seq.agrees_with_sign_test is False:
            sign_cell += "\n[bold]disagrees[/bold]"
        mean = "-" if seq.mean_diff is None else _diff(seq.mean_diff, seq.rci_low, seq.rci_high)
        table.add_row(escape(c.arm), "\n".join([_verdict(c), *notes]), mean,
                      "-" if seq.p_outperform is None else f"{seq.p_outperform:.2f}", sign_cell)
    if comps:
        seq = comps[0].sequential
        level = seq.sign_test.nominal_level
        sign = (f"sign test on wins at the same looks, nominal level {level:.4g}" if level > 0 else
                "the sign test on wins cannot decide within this many replicates")
        table.caption = (f"{seq.rule}. p* = {seq.p_star:.4g} ({seq.p_star_paths:,} simulated paths); alpha "
                         f"{seq.alpha_per_comparison:.4g} per comparison; {sign}.")
    return _fit(table)


def budget_table(result: CompareResult) -> Table:
    """Each tuned plugin's tuning budget over the replicates: model-epochs, training time, trials."""
    table = _table("Tuning budget over the replicates",
                   "plugin", "pruner", "model-epochs", "training s", "complete / pruned trials")
    for b in result.tuning_budgets:
        table.add_row(b.regularizer, b.pruner, f"{b.budget.model_epochs:,}", f"{b.budget.train_seconds:.0f}",
                      f"{b.budget.complete} / {b.budget.pruned}")
    table.caption = result.budget_note
    return _fit(table)


def _symmetric(by_shift: dict[int, float | None], k: int) -> float | None:
    """Mean of the accuracies at shifts +k and -k."""
    a, b = by_shift.get(k), by_shift.get(-k)
    return None if a is None or b is None else (a + b) / 2


def diagnostics_table(result: EvaluateResult) -> Table:
    """Mechanism diagnostics per arm (final epoch where they change per epoch)."""
    table = _table("Diagnostics (means over seeds)", "arm", "accuracy: 95% CI / median",
                   "term: share of loss / |grad| vs CE", "SC (test)", "accuracy at shift 0 / ±4 / ±8",
                   "tuning spread")
    for arm in result.arms:
        d = arm.diagnostics
        at = dict(zip(d.shifts, d.shift_accuracy, strict=True))
        spread = "-"
        if arm.tuning_spread is not None:
            sp = arm.tuning_spread
            spread = f"{len(sp.configs)} studies:\n{pct(sp.min)} to\n{pct(sp.max)}\n(sd {pct(sp.std_ddof1)})"
        ci = "-" if arm.summary is None else f"[{pct(arm.summary.ci_low)},\n{pct(arm.summary.ci_high)}]"
        table.add_row(
            escape(arm.name), f"{ci}\nmedian {pct(arm.summary.median if arm.summary else None)}",
            f"loss {_num(d.reg_share[-1] if d.reg_share else None)}\n"
            f"grad {_num(d.grad_norm_ratio[-1] if d.grad_norm_ratio else None)}",
            _num(d.spectral_consistency, ".4g"),
            f"{pct(at.get(0))}\n{pct(_symmetric(at, 4))}\n{pct(_symmetric(at, 8))}", spread,
        )
    table.caption = ("Term: the regularizer's share of the loss and its gradient norm against the cross-entropy's "
                     "(last epoch). SC: spectral consistency of the test saliency (lower: more alike within a "
                     "class). Accuracy at shift ±k: the mean over shifts +k and -k.")
    return _fit(table)


def cell_word(cell: StudyCell) -> str:
    """A study cell's decision in one word (or two): what the matrix shows without colour."""
    if cell.status == "not applicable":
        return "n/a"
    return cell.decision if cell.status == "decided" and cell.decision else "open"


def cell_numbers(cell: StudyCell) -> str:
    """A study cell's mean difference in points over its interval, and n, on one line."""
    if cell.status == "not applicable" or cell.mean_diff is None:
        return ""
    return f"{100 * cell.mean_diff:+.2f} {interval(cell.low, cell.high)}, n = {cell.replicates}"


def study_table(result: StudyResult) -> Table:
    """The study's matrix, one section per workload and a row per arm (so it reads at 80 columns)."""
    b = result.budget
    table = _table(f"Every arm against '{result.reference}' on every workload",
                   "workload / arm", "decision", "n", "diff vs ref [interval]", "model- epochs")
    for name in result.workloads:
        cells = [c for c in result.cells if c.workload == name]
        table.add_row(f"[bold]{escape(name)}[/bold]", "", "", "", "")
        for k, c in enumerate(cells):
            word = cell_word(c)
            shown = escape(c.reason) if c.status == "not applicable" else (
                _diff(c.mean_diff, c.low, c.high) if c.mean_diff is not None else "-")
            table.add_row(f"  {escape(c.arm)}", _colour(word) if c.status == "decided" else word,
                          "-" if c.replicates is None else str(c.replicates), shown,
                          f"{c.tuning_model_epochs + c.evaluation_model_epochs:,}", end_section=k == len(cells) - 1)
    table.caption = (f"diff: arm - {result.reference} in accuracy points; alpha {b.alpha:g} split over "
                     f"{b.comparisons} comparisons; margin ±{b.margin:g}; {result.total.replicates} replicates, "
                     f"{result.total.model_epochs:,} model-epochs in all.")
    return _fit(table)


def study_markdown(result: StudyResult) -> str:
    """The study's matrix as a markdown table (the README's headline): arms as rows, workloads as columns."""
    head = ["arm vs " + result.reference, *result.workloads]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by = {(c.arm, c.workload): c for c in result.cells}
    for arm in result.arms:
        row = [f"`{arm}`"]
        for name in result.workloads:
            c = by[(arm, name)]
            numbers = cell_numbers(c)
            row.append(f"**{cell_word(c)}**" + (f" {numbers}" if numbers else ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
