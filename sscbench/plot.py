"""The evaluation figure, drawn with matplotlib (Agg) from a results file.

What it is: per-seed test accuracy per arm with the mean, and the mean
training-loss and test-accuracy curves per arm.
What it is not: a place that computes results; it reads ``EvaluateResult`` only.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sscbench.results import EvaluateResult, write_atomic  # noqa: E402


def _mean_curve(rows: list[list[float | None]]) -> np.ndarray:
    arr = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    with np.errstate(all="ignore"):
        return np.nanmean(arr, axis=0) if arr.size else arr


def figure(result: EvaluateResult) -> matplotlib.figure.Figure:
    fig, (ax_seed, ax_loss, ax_acc) = plt.subplots(1, 3, figsize=(15, 4.5))
    for i, arm in enumerate(result.arms):
        color = f"C{i}"
        accs = [100 * v for v in arm.test_accuracy if v is not None]
        jitter = np.linspace(-0.15, 0.15, len(accs)) if len(accs) > 1 else np.zeros(len(accs))
        ax_seed.scatter(i + jitter, accs, color=color, alpha=0.7, label=None)
        if arm.mean is not None:
            ax_seed.errorbar(i, 100 * arm.mean, yerr=100 * (arm.std or 0), color="k", marker="_",
                             markersize=20, capsize=6)
        epochs = np.arange(1, result.spec.evaluate.epochs + 1)
        ax_loss.plot(epochs, _mean_curve(arm.curves.train_loss), color=color, label=arm.name)
        ax_acc.plot(epochs, 100 * _mean_curve(arm.curves.test_accuracy), color=color, label=arm.name)
    ax_seed.set_xticks(range(len(result.arms)), [a.name for a in result.arms])
    ax_seed.set_ylabel("final test accuracy (%)")
    ax_seed.set_title("per seed (dots), mean ± std (black)")
    ax_loss.set(xlabel="epoch", ylabel="training loss (mean over seeds)", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%, mean over seeds)", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
    fig.tight_layout()
    return fig


def save_figure(result: EvaluateResult, path: Path) -> None:
    fig = figure(result)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
