"""Rich tables of plugins and results (built here, printed by the CLI).

What it is: pure functions from typed results to ``rich.table.Table`` objects.
What it is not: a printer; nothing here writes to the terminal.
"""

from __future__ import annotations

from rich.table import Table

from sscbench import registry
from sscbench.results import EvaluateResult, TuneResult


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in params.items())


def plugins_table() -> Table:
    table = Table(title="Regularizer plugins (entry-point group sscbench.regularizers)")
    for col in ("name", "distribution", "description", "hyperparameters (default; search range)"):
        table.add_column(col, overflow="fold")
    for name, info in registry.discover().items():
        try:
            plugin = registry.load(name)
        except registry.PluginError as exc:
            table.add_row(name, f"{info.distribution} {info.version}", f"[red]fails to load: {exc}[/red]", "")
            continue
        hp = []
        for key, default in plugin.defaults().items():
            rng = plugin.search_space.get(key)
            where = f"[{rng.low:g}, {rng.high:g}]{' log' if rng.log else ''}" if rng else "fixed"
            hp.append(f"{key} = {default:g}; {where}")
        table.add_row(name, f"{info.distribution} {info.version}", plugin.description,
                      "\n".join(hp) or "(none: lr and weight_decay only)")
    return table


def tune_table(result: TuneResult, top: int = 5) -> Table:
    table = Table(title=f"Tuning '{result.regularizer}': best trials (validation accuracy)")
    for col in ("study", "trial", "value", "hyperparameters"):
        table.add_column(col)
    rows = [(s.study_name, t) for s in result.studies for t in s.trials if t.value is not None]
    rows.sort(key=lambda r: -r[1].value)
    for study, trial in rows[:top]:
        table.add_row(study, str(trial.number), pct(trial.value), fmt_params(trial.params))
    complete = sum(t.state == "COMPLETE" for s in result.studies for t in s.trials)
    table.caption = f"{complete} completed trials in {len(result.studies)} study(ies)"
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
