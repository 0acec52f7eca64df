"""The evaluation figure, drawn with matplotlib (Agg) from a results file.

What it is: top row: per-seed final test accuracy per arm with mean ± std,
mean training-loss and test-accuracy curves, and test accuracy against a
circular shift of the inputs; bottom row: each arm's mean normalised saliency
spectrum per class (class x frequency).
What it is not: a place that computes results; it reads ``EvaluateResult`` only.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sscbench.results import EvaluateResult, write_atomic  # noqa: E402


def _array(rows: list[list[float | None]] | list[float | None]) -> np.ndarray:
    return np.array(rows, dtype=float)  # None -> nan


def _mean_curve(rows: list[list[float | None]]) -> np.ndarray:
    arr = _array(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-NaN columns (every seed diverged) give NaN, as they should
        return np.nanmean(arr, axis=0) if arr.size else arr


def _paired_differences(ax: matplotlib.axes.Axes, result: EvaluateResult) -> None:
    """Per-seed differences from the reference arm, with the mean and its bootstrap CI."""
    by_name = {a.name: a for a in result.arms}
    ref = by_name.get(result.reference or "")
    for i, c in enumerate(result.comparisons):
        arm = by_name[c.arm]
        diffs = [100 * (a - b) for a, b in zip(arm.test_accuracy, ref.test_accuracy, strict=True)
                 if a is not None and b is not None]
        ax.scatter(np.full(len(diffs), i), diffs, color="0.6", s=12)
        ax.errorbar(i, 100 * c.mean_diff, yerr=[[100 * (c.mean_diff - c.ci_low)], [100 * (c.ci_high - c.mean_diff)]],
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


def save_figure(result: EvaluateResult, path: Path) -> None:
    fig = figure(result)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
