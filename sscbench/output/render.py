"""Rich tables of plugins and results (built here, printed by the CLI).

What it is: pure functions from typed results to ``rich.table.Table`` objects.
What it is not: a printer; nothing here writes to the terminal.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from sscbench.contracts import registry
from sscbench.output.results import CompareResult, EvaluateResult, TuneResult, WorkloadsCompareResult
from sscbench.spec import DataSpec


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in params.items())


def plugins_table() -> Table:
    table = Table(title="Regularizer plugins (entry-point group sscbench.regularizers)")
    for col in ("name", "distribution", "description", "hyperparameters (default; search range)", "inputs"):
        table.add_column(col, overflow="fold")
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
    return table


def workloads_table() -> Table:
    """Every discovered workload: its description, arguments and what its models take and give."""
    table = Table(title="Workloads (entry-point group sscbench.workloads)")
    for col in ("name", "distribution", "description", "arguments (default)", "sample shape / classes"):
        table.add_column(col, overflow="fold")
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
        table.add_row(name, f"{info.distribution} {info.version}", escape(workload.description),
                      escape("\n".join(listed)) or "(none)", f"{list(shape.input)} / {shape.classes}")
    return table


def workloads_comparison_table(result: WorkloadsCompareResult) -> Table:
    """Does the gain survive a change of task? One row per workload and arm."""
    table = Table(title="The same comparison on every workload (score = mean test accuracy over seeds)")
    for col in ("workload", "arm", "score over replicates (sd)", "diff vs reference [95% CI]", "P(A > B) [95% CI]",
                "p (t-test)", "verdict"):
        table.add_column(col)
    for name, res in zip(result.workloads, result.results, strict=True):
        comps = {c.arm: c for c in res.comparisons}
        for k, arm in enumerate(res.arms):
            c = comps.get(arm.name)
            cells = (["reference", "", "", ""] if arm.name == res.reference else ["-", "-", "-", "-"]) if c is None \
                else [f"{100 * c.mean_diff:+.2f} {_interval(c.ci_low, c.ci_high)}",
                      f"{c.p_outperform:.2f} [{c.p_outperform_ci_low:.2f}, {c.p_outperform_ci_high:.2f}]",
                      _num(c.p_ttest), _colour(c.verdict)]
            table.add_row(name if k == 0 else "", arm.name, f"{pct(arm.mean)} ({pct(arm.std_ddof1)})", *cells,
                          end_section=k == len(res.arms) - 1)
    r = len(result.results[0].replicates) if result.results else 0
    table.caption = f"{r} replicate(s) per workload; verdicts as in `sscbench compare` (docs/statistics.md)."
    return table


def contract_table(name: str, checks: list) -> Table:
    """One row per contract check: passed or the violation."""
    workloads = list(dict.fromkeys(c.workload for c in checks))
    table = Table(title=f"Contract checks of regularizer '{name}' on {len(workloads)} workload(s)")
    for col in ("workload", "check", "result"):
        table.add_column(col)
    table.add_column("detail", overflow="fold")
    for k, c in enumerate(checks):
        first = k == 0 or checks[k - 1].workload != c.workload
        last = k == len(checks) - 1 or checks[k + 1].workload != c.workload
        table.add_row(c.workload if first else "", c.check, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]",
                      escape(c.message), end_section=last)
    return table


def tune_table(result: TuneResult, top: int = 5) -> Table:
    table = Table(title=f"Tuning '{result.regularizer}': best trials (validation accuracy)")
    for col in ("study", "trial", "value", "hyperparameters"):
        table.add_column(col)
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
    return table


def evaluate_table(result: EvaluateResult) -> Table:
    """The seed's results table: mode, test accuracy mean +- std (ddof 0), best hyperparameters."""
    n = result.spec.evaluate.seeds
    table = Table(title=f"Test accuracy after {result.spec.evaluate.epochs} epochs, {n} seeds")
    for col in ("arm", "test accuracy (mean ± std)", "std (ddof 1)", "per seed", "hyperparameters"):
        table.add_column(col)
    for arm in result.arms:
        mean_std = f"{pct(arm.mean)} ± {pct(arm.std)}"
        if arm.diverged:
            mean_std += f" ({len(arm.diverged)} diverged)"
        table.add_row(arm.name, mean_std, pct(arm.std_ddof1),
                      " ".join(pct(v) for v in arm.test_accuracy), fmt_params(arm.params))
    return table


def _num(x: float | None, fmt: str = ".3g") -> str:
    return "-" if x is None else format(x, fmt)


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{100 * low:+.2f}, {100 * high:+.2f}]"


def comparison_table(result: EvaluateResult) -> Table:
    """Paired statistics of every arm against the reference (differences in accuracy points)."""
    n = result.spec.evaluate.seeds
    table = Table(title=f"Paired comparison with '{result.reference}' over {n} seeds (alpha 0.05)")
    for col in ("arm", "mean diff [95% CI]", "p (t-test)", "p (Wilcoxon)", "Hedges' g", "P(A > B)",
                "verdict", "seeds for 80% power"):
        table.add_column(col)
    for c in result.comparisons:
        colour = {"better": "green", "worse": "red"}.get(c.verdict, "yellow")
        table.add_row(
            c.arm, f"{100 * c.mean_diff:+.2f} {_interval(c.ci_low, c.ci_high)}",
            _num(c.p_ttest), _num(c.p_wilcoxon), _num(c.hedges_g, ".2f"), f"{c.prob_improvement:.2f}",
            f"[{colour}]{c.verdict}[/{colour}]", "-" if c.seeds_for_power is None else str(c.seeds_for_power),
        )
    caption = (f"CI: {result.comparisons[0].ci_method} bootstrap, {result.comparisons[0].ci_resamples} "
               "resamples; verdict from the paired t-test. " if result.comparisons else "")
    table.caption = f"{caption}Covers {result.covers}."
    return table


def _colour(verdict: str) -> str:
    colour = {"better": "green", "worse": "red"}.get(verdict, "yellow")
    return f"[{colour}]{verdict}[/{colour}]"


def replicates_table(result: CompareResult) -> Table:
    """One row per replicate: what it derived from its index, each arm's score, the paired differences."""
    table = Table(title=f"Replicates: score = mean test accuracy over {result.spec.evaluate.seeds} seeds")
    for col in ("r", "data seed", "sampler seed", "model seeds"):
        table.add_column(col)
    names = [a.name for a in result.arms]
    for name in names:
        table.add_column(name)
    others = [c.arm for c in result.comparisons]
    for name in others:
        table.add_column(f"{name} − {result.reference}")
    for rec in result.replicates:
        scores = {a.name: a.score for a in rec.arms}
        seeds = f"{rec.model_seeds[0]}..{rec.model_seeds[-1]}"
        diffs = []
        for name in others:
            a, b = scores.get(name), scores.get(result.reference or "")
            diffs.append("-" if a is None or b is None else f"{100 * (a - b):+.2f}")
        table.add_row(str(rec.index), str(rec.data_seed), str(rec.sampler_seed), seeds,
                      *(pct(scores.get(n)) for n in names), *diffs)
    means = {a.name: a for a in result.arms}
    table.add_row("mean", "", "", "", *(f"{pct(means[n].mean)} (sd {pct(means[n].std_ddof1)})" for n in names),
                  *(f"{100 * c.mean_diff:+.2f}" for c in result.comparisons), end_section=True)
    return table


def replicated_comparison_table(result: CompareResult) -> Table:
    """The decision over replicates: difference, P(A > B), t-test, verdict, power, variance split."""
    r = len(result.replicates)
    table = Table(title=f"Replicated comparison with '{result.reference}' over {r} replicates")
    for col in ("arm", "mean diff [95% CI]", "two-level CI", "P(A > B) [95% CI]", "p (t-test)", "verdict",
                "replicates for 80% power", "variance: replicates / seeds"):
        table.add_column(col)
    for c in result.comparisons:
        share = ("-" if c.variance_share_replicates is None
                 else f"{100 * c.variance_share_replicates:.0f}% / {100 * c.variance_share_seeds:.0f}%")
        table.add_row(
            c.arm, f"{100 * c.mean_diff:+.2f} {_interval(c.ci_low, c.ci_high)}",
            _interval(c.ci_two_level_low, c.ci_two_level_high),
            f"{c.p_outperform:.2f} [{c.p_outperform_ci_low:.2f}, {c.p_outperform_ci_high:.2f}]", _num(c.p_ttest),
            _colour(c.verdict), "-" if c.replicates_for_power is None else str(c.replicates_for_power), share,
        )
    gamma = result.spec.compare.gamma
    table.caption = (f"Verdict: better / worse only when the paired t-test over replicates rejects at 0.05, the "
                     f"P(A > B) interval excludes 0.5 and P(A > B) >= {gamma:g} (<= {1 - gamma:g}). "
                     f"Covers {result.covers}." + (f" Tuning: {result.budget_note}." if result.budget_note else ""))
    return table


def budget_table(result: CompareResult) -> Table:
    """Each tuned plugin's tuning budget over the replicates: model-epochs, training time, trials."""
    table = Table(title="Tuning budget over the replicates")
    for col in ("plugin", "pruner", "model-epochs", "training s", "complete / pruned trials"):
        table.add_column(col)
    for b in result.tuning_budgets:
        table.add_row(b.regularizer, b.pruner, f"{b.budget.model_epochs:,}", f"{b.budget.train_seconds:.0f}",
                      f"{b.budget.complete} / {b.budget.pruned}")
    table.caption = result.budget_note
    return table


def _symmetric(by_shift: dict[int, float | None], k: int) -> float | None:
    """Mean of the accuracies at shifts +k and -k."""
    a, b = by_shift.get(k), by_shift.get(-k)
    return None if a is None or b is None else (a + b) / 2


def diagnostics_table(result: EvaluateResult) -> Table:
    """Mechanism diagnostics per arm (final epoch where they change per epoch)."""
    table = Table(title="Diagnostics (means over seeds)")
    for col in ("arm", "95% CI of mean acc", "median", "term / loss", "|grad term| / |grad CE|",
                "spectral consistency (test)", "acc at shift 0 / ±4 / ±8", "tuning spread"):
        table.add_column(col)
    for arm in result.arms:
        d = arm.diagnostics
        at = dict(zip(d.shifts, d.shift_accuracy, strict=True))
        spread = "-"
        if arm.tuning_spread is not None:
            sp = arm.tuning_spread
            spread = f"{len(sp.configs)} studies: {pct(sp.min)}..{pct(sp.max)} (sd {pct(sp.std_ddof1)})"
        ci = "-" if arm.summary is None else f"[{pct(arm.summary.ci_low)}, {pct(arm.summary.ci_high)}]"
        table.add_row(
            arm.name, ci, pct(arm.summary.median if arm.summary else None),
            _num(d.reg_share[-1] if d.reg_share else None),
            _num(d.grad_norm_ratio[-1] if d.grad_norm_ratio else None),
            _num(d.spectral_consistency, ".4g"),
            f"{pct(at.get(0))} / {pct(_symmetric(at, 4))} / {pct(_symmetric(at, 8))}", spread,
        )
    return table
