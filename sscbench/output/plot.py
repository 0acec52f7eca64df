"""The evaluation figure, drawn with matplotlib (Agg) from a results file.

What it is: ``evaluate.png``: top row: per-seed final test accuracy per arm
with mean ± std, mean training-loss and test-accuracy curves, and test
accuracy against a circular shift of the inputs; bottom row: each arm's mean
normalised saliency spectrum per class (class x frequency). ``compare.png``:
the per-replicate paired differences as a forest plot, P(A > B) with its
interval, and each arm's tuned hyperparameters across replicates.
What it is not: a place that computes results; it reads results models only.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sscbench.output.results import CompareResult, EvaluateResult, WorkloadsCompareResult, write_atomic  # noqa: E402


def _array(rows: list[list[float | None]] | list[float | None]) -> np.ndarray:
    return np.array(rows, dtype=float)  # None -> nan


def _mean_curve(rows: list[list[float | None]]) -> np.ndarray:
    arr = _array(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns (every seed diverged) give NaN, as they should
        return np.nanmean(arr, axis=0) if arr.size else arr


def _bar(center, low, high) -> np.ndarray:
    """Error-bar lengths below and above ``center`` for the interval [low, high], as matplotlib wants them
    (2 x N, never negative: an interval computed apart from its point, such as Wilson's at P = 1 or a
    bootstrap's, can miss it by a rounding error)."""
    center, low, high = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (center, low, high))
    return np.clip(np.stack([center - low, high - center]), 0, None)


def _paired_differences(ax: matplotlib.axes.Axes, result: EvaluateResult) -> None:
    """Per-seed differences from the reference arm, with the mean and its bootstrap CI."""
    by_name = {a.name: a for a in result.arms}
    ref = by_name.get(result.reference or "")
    for i, c in enumerate(result.comparisons):
        arm = by_name[c.arm]
        diffs = [100 * (a - b) for a, b in zip(arm.test_accuracy, ref.test_accuracy, strict=True)
                 if a is not None and b is not None]
        ax.scatter(np.full(len(diffs), i), diffs, color="0.6", s=12)
        low, high = (c.mean_diff, c.mean_diff) if c.ci_low is None else (c.ci_low, c.ci_high)
        ax.errorbar(i, 100 * c.mean_diff, yerr=_bar(100 * c.mean_diff, 100 * low, 100 * high),
                    color={"better": "green", "worse": "red"}.get(c.verdict, "k"), marker="o", capsize=6)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(result.comparisons)), [c.arm for c in result.comparisons], rotation=20)
    ax.set(ylabel=f"test accuracy − {result.reference or 'reference'} (points)",
           title="paired difference, mean and 95% CI")


def figure(result: EvaluateResult) -> matplotlib.figure.Figure:
    arms = result.arms
    cols = max(5, len(arms))
    fig = plt.figure(figsize=(4.2 * cols, 8.5))
    grid = fig.add_gridspec(2, cols)
    ax_seed, ax_diff, ax_loss, ax_acc, ax_shift = (fig.add_subplot(grid[0, i]) for i in range(5))
    _paired_differences(ax_diff, result)
    epochs = np.arange(1, result.spec.evaluate.epochs + 1)
    for i, arm in enumerate(arms):
        color = f"C{i}"
        accs = [100 * v for v in arm.test_accuracy if v is not None]
        jitter = np.linspace(-0.15, 0.15, len(accs)) if len(accs) > 1 else np.zeros(len(accs))
        ax_seed.scatter(i + jitter, accs, color=color, alpha=0.7)
        if arm.mean is not None:
            ax_seed.errorbar(i, 100 * arm.mean, yerr=100 * (arm.std or 0), color="k", marker="_",
                             markersize=20, capsize=6)
        ax_loss.plot(epochs, _mean_curve(arm.curves.train_loss), color=color, label=arm.name)
        ax_acc.plot(epochs, 100 * _mean_curve(arm.curves.test_accuracy), color=color, label=arm.name)
        d = arm.diagnostics
        ax_shift.plot(d.shifts, 100 * _array(d.shift_accuracy), color=color, marker="o", ms=3, label=arm.name)
        ax_spec = fig.add_subplot(grid[1, i])
        if not d.spectrum_by_class or not d.spectrum_by_class[0]:  # inputs that are not 1-D signals
            ax_spec.set_axis_off()
            ax_spec.set_title(f"{arm.name}: no saliency spectrum\n(the workload's inputs are not 1-D)")
            continue
        image = ax_spec.imshow(_array(d.spectrum_by_class), aspect="auto", cmap="viridis", origin="lower")
        consistency = d.spectral_consistency if d.spectral_consistency is not None else float("nan")
        ax_spec.set(title=f"{arm.name}: saliency spectrum by class\n(spectral consistency {consistency:.4g})",
                    xlabel="frequency index", ylabel="class")
        fig.colorbar(image, ax=ax_spec, fraction=0.046)
    ax_seed.set_xticks(range(len(arms)), [a.name for a in arms], rotation=20)
    ax_seed.set(ylabel="final test accuracy (%)", title="per seed (dots), mean ± std (black)")
    ax_loss.set(xlabel="epoch", ylabel="training loss (mean over seeds)", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%, mean over seeds)", title="test accuracy")
    ax_shift.set(xlabel="circular shift of test inputs (samples)", ylabel="test accuracy (%)",
                 title="accuracy under shift")
    for ax in (ax_loss, ax_acc, ax_shift):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _forest(ax: matplotlib.axes.Axes, result: CompareResult) -> None:
    """Per replicate and arm: the paired difference of scores (dot) and its seeds' spread (bar)."""
    ref = result.reference
    step = 0.8 / max(1, len(result.comparisons))
    for k, c in enumerate(result.comparisons):
        color = {"better": "green", "worse": "red"}.get(c.verdict, f"C{k}")
        for i, rec in enumerate(result.replicates):
            arm = next((x for x in rec.arms if x.name == c.arm), None)
            base = next((x for x in rec.arms if x.name == ref), None)
            if arm is None or base is None:  # not trained: its comparison had decided
                continue
            a, b = _array(arm.test_accuracy), _array(base.test_accuracy)
            d = 100 * (a - b)
            d = d[np.isfinite(d)]
            if d.size:
                y = i + k * step
                ax.plot([d.min(), d.max()], [y, y], color=color, alpha=0.4, lw=2)
                ax.plot(100 * (np.nanmean(a) - np.nanmean(b)), y, "o", color=color, ms=4)
        y = len(result.replicates) + 0.5 + k * step
        low, high = (c.mean_diff, c.mean_diff) if c.ci_low is None else (c.ci_low, c.ci_high)
        ax.errorbar(100 * c.mean_diff, y, xerr=_bar(100 * c.mean_diff, 100 * low, 100 * high),
                    fmt="D", color=color, capsize=5, label=f"{c.arm}: mean, 95% CI")
    ax.axvline(0, color="k", lw=0.8)
    ticks = [f"r{rec.index}" for rec in result.replicates] + ["mean"]
    ax.set_yticks([*range(len(result.replicates)), len(result.replicates) + 0.5], ticks)
    ax.invert_yaxis()
    ax.set(xlabel=f"test accuracy − {ref} (points)", title="paired difference per replicate\n(dot: scores, bar: seeds)")
    if result.comparisons:
        ax.legend(fontsize=8, loc="lower right")


def _p_outperform(ax: matplotlib.axes.Axes, result: CompareResult) -> None:
    comps = result.comparisons
    for k, c in enumerate(comps):
        color = {"better": "green", "worse": "red"}.get(c.verdict, "k")
        ax.errorbar(k, c.p_outperform, yerr=_bar(c.p_outperform, c.p_outperform_ci_low, c.p_outperform_ci_high),
                    fmt="o", color=color, capsize=6)
    gamma = result.spec.compare.gamma
    for level, style in ((0.5, "-"), (gamma, "--"), (1 - gamma, "--")):
        ax.axhline(level, color="0.5", ls=style, lw=0.8)
    ax.set_xticks(range(len(comps)), [c.arm for c in comps], rotation=20)
    ax.set(ylim=(-0.02, 1.02), ylabel=f"P(arm > {result.reference}) over replicates",
           title=f"probability of outperforming, {comps[0].p_outperform_ci_method if comps else ''} 95% interval\n"
                 f"(dashed: gamma = {gamma:g} and 1 - gamma)")


def _hyperparameters(ax: matplotlib.axes.Axes, result: CompareResult) -> None:
    """lr against weight decay of every tuned arm in every replicate (log-log)."""
    for k, reg in enumerate(dict.fromkeys(p.regularizer for rec in result.replicates for p in rec.tuning)):
        picks = [p for rec in result.replicates for p in rec.tuning if p.regularizer == reg]
        ax.scatter([p.params["lr"] for p in picks], [p.params["weight_decay"] for p in picks], color=f"C{k}",
                   label=reg, alpha=0.8)
    ax.set(xscale="log", yscale="log", xlabel="tuned lr", ylabel="tuned weight decay",
           title="tuned hyperparameters across replicates")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _sequential(ax: matplotlib.axes.Axes, c: object) -> None:
    """One comparison's repeated CI narrowing over n, the margin band and the stopping point."""
    seq = c.sequential
    color = {"better": "green", "worse": "red", "equivalent": "C0"}.get(c.verdict, "0.3")
    n = [look.n for look in seq.looks]
    ax.axhspan(-100 * seq.margin, 100 * seq.margin, color="C0", alpha=0.12, label=f"margin ±{100 * seq.margin:g}")
    ax.axhline(0, color="k", lw=0.8)
    if n:
        mean = np.array([100 * look.mean_diff for look in seq.looks])
        low, high = (np.array([100 * getattr(look, f) for look in seq.looks]) for f in ("rci_low", "rci_high"))
        ax.errorbar(n, mean, yerr=_bar(mean, low, high), fmt="o-", color=color, ms=3, capsize=3, lw=1,
                    label="mean difference, repeated CI")
        ax.axvline(seq.replicates_used, color=color, ls="--", lw=1)
        low, high = 100 * seq.looks[-1].rci_low, 100 * seq.looks[-1].rci_high
        span = max(high - low, 4 * 100 * seq.margin)
        ax.set_ylim(min(low, -100 * seq.margin) - 0.1 * span, max(high, 100 * seq.margin) + 0.1 * span)
    ax.set_xlim(seq.min_replicates - 0.5, max(seq.replicates_used, seq.min_replicates) + 0.5)
    ax.set(xlabel="replicates n", ylabel=f"{c.arm} − {c.reference} (points)",
           title=f"{c.arm}: {c.verdict} at n = {seq.replicates_used}")
    ax.legend(fontsize=7, loc="upper right")


def compare_figure(result: CompareResult) -> matplotlib.figure.Figure:
    sequential = [c for c in result.comparisons if c.sequential is not None]
    height = 0.35 * len(result.replicates) + 4.5
    if not sequential:
        fig, (ax_forest, ax_p, ax_hp) = plt.subplots(1, 3, figsize=(16, height))
    else:
        cols = max(3, len(sequential))
        fig = plt.figure(figsize=(max(16, 4.5 * cols), height + 4))
        grid = fig.add_gridspec(2, cols, height_ratios=[height, 4])
        third = cols // 3
        ax_forest, ax_p = fig.add_subplot(grid[0, :third]), fig.add_subplot(grid[0, third:2 * third])
        ax_hp = fig.add_subplot(grid[0, 2 * third:])
        for k, c in enumerate(sequential):
            _sequential(fig.add_subplot(grid[1, k]), c)
    _forest(ax_forest, result)
    _p_outperform(ax_p, result)
    _hyperparameters(ax_hp, result)
    fig.suptitle(f"{len(result.replicates)} replicates × {result.spec.evaluate.seeds} seeds; covers {result.covers}",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the panels
    return fig


def workloads_figure(result: WorkloadsCompareResult) -> matplotlib.figure.Figure:
    """One panel per workload: the paired difference per replicate and its mean with the 95% CI."""
    n = len(result.results)
    rows = max(len(r.replicates) for r in result.results)
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 0.35 * rows + 3.5), squeeze=False)
    for ax, name, res in zip(axes[0], result.workloads, result.results, strict=True):
        _forest(ax, res)
        ax.set_title(f"{name}\n{ax.get_title()}", fontsize=9)
    fig.suptitle("Does the difference survive a change of task? (one panel per workload)", fontsize=10)
    fig.tight_layout()
    return fig


def cell_figure(result: CompareResult, arm: str) -> matplotlib.figure.Figure:
    """One study cell: the arm's paired differences per replicate, its sequential interval over n (if
    decided sequentially) and the tuned hyperparameters of the arm and the reference across replicates."""
    c = next(x for x in result.comparisons if x.arm == arm)
    regularizers = {a.regularizer for a in result.spec.evaluate.arms if a.name in (arm, result.reference)}
    only = result.model_copy(update={
        "comparisons": [c],
        "replicates": [rec.model_copy(update={"tuning": [p for p in rec.tuning if p.regularizer in regularizers]})
                       for rec in result.replicates]})
    panels = 3 if c.sequential is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.6 * panels, 0.3 * len(result.replicates) + 3.6))
    _forest(axes[0], only)
    if c.sequential is not None:
        _sequential(axes[1], c)
    _hyperparameters(axes[-1], only)
    fig.tight_layout()
    return fig


def png(fig: matplotlib.figure.Figure, dpi: int = 72) -> bytes:
    """The figure as PNG bytes, closed; the same figure gives the same bytes (no timestamp or software tag)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def save_workloads_figure(result: WorkloadsCompareResult, path: Path) -> None:
    _save(workloads_figure(result), path)


def save_compare_figure(result: CompareResult, path: Path) -> None:
    _save(compare_figure(result), path)


def save_figure(result: EvaluateResult, path: Path) -> None:
    _save(figure(result), path)


def _save(fig: matplotlib.figure.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
