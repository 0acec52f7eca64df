"""The evaluation stage: every arm over paired seeds, on the test set, with diagnostics.

What it is: trains a unit, the arms that share a regularizer, over the seeds
for the spec's epochs as one stack (along with the other tuning studies' picks
when there are several; ``sscbench.workqueue`` hands units to processes) and
summarises per arm: per-seed final test accuracy, mean, std (ddof 0 as the
seed reported, and ddof 1), a bootstrap CI, the mechanism diagnostics, and the
spread across tuning studies.
What it is not: the statistics between arms (``sscbench.stats``, called by the
workflow) or any output.

Seed s gives every arm the same initial weights and batch order, so the arms'
results are paired by seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
import torch

from sscbench.contracts.task import Run
from sscbench.data import Split
from sscbench.engine import diagnostics
from sscbench.engine.stack import Stacked
from sscbench.engine.trainer import (
    History,
    Member,
    diagnostic_chunk,
    member_hyperparameters,
    stack_progress,
    train_stack,
)
from sscbench.output.results import ArmResult, Curves, Diagnostics, StudyConfig, TuningSpread, finite_or_none
from sscbench.stages.arms import ResolvedArm
from sscbench.stats import paired as stats


def _list(a: np.ndarray) -> list[float | None]:
    return [finite_or_none(float(v)) for v in a]


def _rows(a: np.ndarray) -> list[list[float | None]]:
    return [_list(row) for row in a]


def _nanmean(a: np.ndarray, axis: int = 0) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    with np.errstate(all="ignore"):
        count = np.isfinite(a).sum(axis)
        total = np.where(np.isfinite(a), a, 0.0).sum(axis)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass
class _Measured:
    """Everything measured for one stack, indexed by member."""

    history: History
    grad_ratio: np.ndarray  # [S, epochs]
    consistency: np.ndarray  # [S]
    spectra: np.ndarray  # [S, C, F]
    shift_acc: np.ndarray  # [S, K]


#: The diagnostics (saliency spectra, accuracy under shifts) look at this many test samples at most:
#: all of mnist1d's 2,000; an evenly spaced part of a larger test set (UCR Crop has 16,800).
DIAGNOSTIC_SAMPLES = 2000


def diagnostic_part(split: Split) -> Split:
    """The test samples the diagnostics use: all, or ``DIAGNOSTIC_SAMPLES`` evenly spaced over the split."""
    if len(split) <= DIAGNOSTIC_SAMPLES:
        return split
    rows = torch.from_numpy(np.linspace(0, len(split) - 1, DIAGNOSTIC_SAMPLES).round().astype(np.int64))
    return Split(split.x[rows], split.y[rows])


def _measure(run: Run, members: list[Member], regularizer: str,
             on_epoch: Callable[[int, float], None] | None) -> _Measured:
    spec, dataset, plugin, arch = run.spec, run.dataset(), run.plugin(regularizer), run.architecture
    device = torch.device(spec.train.device)
    hp = member_hyperparameters(members, plugin, device)
    probe = Split(dataset.train.x[: spec.train.batch_size], dataset.train.y[: spec.train.batch_size]).to(device)
    seeds = [m.seed for m in members]
    ratios = np.full((len(members), spec.evaluate.epochs), np.nan)

    progress = stack_progress(len(members), on_epoch) if on_epoch is not None else None

    def hook(epoch: int, model: Stacked, first: int) -> None:
        rows = slice(first, first + model.size)
        part = {k: v[rows] for k, v in hp.items()}
        ratios[rows, epoch] = diagnostics.gradient_norm_ratio(model, plugin, part, probe, seeds[rows]).numpy()
        if progress is not None:
            progress(epoch, model, first)

    history = train_stack(dataset.train, arch, members, plugin, spec.evaluate.epochs, spec.train,
                          {"test": dataset.test}, hook)
    test = diagnostic_part(dataset.test).to(device)
    size = len(members)
    chunk = diagnostic_chunk(arch, size, device)  # a pass over the whole stack must fit in memory
    if test.x.dim() == 2:  # spectra of 1-D signals; other inputs have no such diagnostic
        sal = diagnostics.saliency(history.model, test, chunk)
        consistency = diagnostics.consistency(sal, test.y, dataset.num_classes).cpu().numpy()
        spectra = diagnostics.spectrum_by_class(sal, test.y, dataset.num_classes).cpu().numpy()
    else:
        consistency, spectra = np.full(size, np.nan), np.zeros((size, 0, 0))
    return _Measured(
        history=history, grad_ratio=ratios, consistency=consistency, spectra=spectra,
        shift_acc=diagnostics.shift_accuracy(history.model, test, chunk=chunk).cpu().numpy(),
    )


def _diagnostics(m: _Measured, rows: slice) -> Diagnostics:
    h = m.history
    alive = np.array([e is None for e in h.diverged_at[rows]])
    with np.errstate(all="ignore"):
        share = h.reg_term[rows] / h.train_loss[rows]
    consistency = np.where(alive, m.consistency[rows], np.nan)
    shift = np.where(alive[:, None], m.shift_acc[rows], np.nan)
    spectra = m.spectra[rows][alive] if alive.any() else np.full_like(m.spectra[rows][:1], np.nan)
    return Diagnostics(
        reg_share=_list(_nanmean(share)), grad_norm_ratio=_list(_nanmean(m.grad_ratio[rows])),
        spectral_consistency=finite_or_none(float(_nanmean(consistency))),
        spectral_consistency_per_seed=_list(consistency),
        spectrum_by_class=[[float(v) for v in row] for row in np.nan_to_num(spectra.mean(0))],
        shifts=list(diagnostics.SHIFTS), shift_accuracy=_list(_nanmean(shift)),
        shift_accuracy_per_seed=_rows(shift),
    )


def _final(m: _Measured, rows: slice) -> np.ndarray:
    return m.history.accuracy["test"][rows][:, -1]


def _summary(final: np.ndarray) -> stats.Summary | None:
    finite = final[np.isfinite(final)]
    return stats.summarize(finite) if finite.size else None


def summarise(arm: ResolvedArm, seeds: list[int], m: _Measured, rows: slice,
              spread: TuningSpread | None = None) -> ArmResult:
    h = m.history
    acc = h.accuracy["test"][rows]
    final = acc[:, -1]
    summary = _summary(final)
    diverged = [seeds[i] for i, e in enumerate(h.diverged_at[rows]) if e is not None]
    return ArmResult(
        name=arm.name, regularizer=arm.regularizer, params=arm.params, params_source=arm.source,
        defaults_used=list(arm.defaults_used), seeds=seeds,
        test_accuracy=_list(final), diverged=diverged,
        mean=summary.mean if summary else None, std=summary.std if summary else None,
        std_ddof1=summary.std_ddof1 if summary else None,
        curves=Curves(train_loss=_rows(h.train_loss[rows]), reg_term=_rows(h.reg_term[rows]),
                      test_accuracy=_rows(acc)),
        summary=summary, diagnostics=_diagnostics(m, rows), tuning_spread=spread,
    )


def _spread(configs: list[tuple[str, dict[str, float], np.ndarray]]) -> TuningSpread:
    records = []
    for study, params, final in configs:
        finite = final[np.isfinite(final)]
        records.append(StudyConfig(study=study, params=params, test_accuracy=_list(final),
                                   mean=float(finite.mean()) if finite.size else None))
    means = np.array([r.mean for r in records if r.mean is not None])
    return TuningSpread(configs=records, std_ddof1=float(means.std(ddof=1)) if means.size > 1 else None,
                        min=float(means.min()) if means.size else None,
                        max=float(means.max()) if means.size else None)


class _Configs:
    """Distinct hyperparameter configurations of one stack, each owning ``seeds`` consecutive rows."""

    def __init__(self, seeds: int) -> None:
        self.seeds = seeds
        self.configs: list[dict[str, float]] = []
        self._index: dict[tuple[tuple[str, float], ...], int] = {}

    def rows(self, params: dict[str, float]) -> slice:
        """The rows of ``params``, added as a new configuration the first time it is seen."""
        key = tuple(sorted(params.items()))
        if key not in self._index:
            self._index[key] = len(self.configs)
            self.configs.append(params)
        k = self._index[key]
        return slice(k * self.seeds, (k + 1) * self.seeds)


def units(arms: list[ResolvedArm]) -> list[list[ResolvedArm]]:
    """The evaluation's units of work: the arms of one regularizer, trained as one stack."""
    return [list(g) for _, g in groupby(sorted(arms, key=lambda a: a.regularizer), key=lambda a: a.regularizer)]


def evaluate_unit(
    run: Run,
    group: list[ResolvedArm],
    seeds: Sequence[int],
    on_epoch: Callable[[str, int, float], None] | None = None,
) -> list[ArmResult]:
    """Train one unit (arms sharing a regularizer) over ``seeds`` as one stack; results in the group's order."""
    seeds = list(seeds)
    # Each distinct configuration trains once: an arm and the tuning studies' picks (for the
    # spread across studies) that share hyperparameters share their rows of the stack.
    stack = _Configs(len(seeds))
    arm_rows = {a.name: stack.rows(a.params) for a in group}
    study_rows = {a.name: [(study, p, stack.rows(p)) for study, p in a.studies] for a in group}
    members = [Member(seed, p["lr"], p["weight_decay"], {k: v for k, v in p.items()
                                                          if k not in ("lr", "weight_decay")})
               for p in stack.configs for seed in seeds]
    label = ", ".join(a.name for a in group)
    hook = (lambda epoch, share: on_epoch(label, epoch, share)) if on_epoch else None
    measured = _measure(run, members, group[0].regularizer, hook)
    out = []
    for arm in group:
        picks = study_rows[arm.name]
        spread = _spread([(study, p, _final(measured, rows)) for study, p, rows in picks]) if picks else None
        out.append(summarise(arm, seeds, measured, arm_rows[arm.name], spread))
    return out


def comparisons(arm_results: list[ArmResult], reference: str, seed: int = 0) -> list[stats.Comparison]:
    """Every arm against the reference, on the seeds where both finished (paired by seed)."""
    ref = next(a for a in arm_results if a.name == reference)
    out = []
    for arm in arm_results:
        if arm.name == reference:
            continue
        pairs = [(x, y) for x, y in zip(arm.test_accuracy, ref.test_accuracy, strict=True)
                 if x is not None and y is not None]
        if not pairs:
            continue
        a, b = (np.array(v) for v in zip(*pairs, strict=True))
        out.append(stats.compare(arm.name, a, reference, b, seed=seed))
    return out
