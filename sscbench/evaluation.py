"""The evaluation stage: every arm over paired seeds, on the test set.

What it is: trains each arm's seeds 0..N-1 for the spec's epochs (arms that
share a regularizer train together as one stack) and summarises the final
test accuracy per arm: the per-seed values, their mean, and the standard
deviation with ddof 0 (what the seed reported) and ddof 1.
What it is not: tuning, statistics between arms (``sscbench.stats``) or output.

Seed s gives every arm the same initial weights and batch order, so the arms'
results are paired by seed.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

import numpy as np

from sscbench import registry
from sscbench.arms import ResolvedArm
from sscbench.data import Dataset
from sscbench.results import ArmResult, Curves, finite_or_none
from sscbench.spec import RunSpec
from sscbench.trainer import History, Member, train_stack


def _rows(a: np.ndarray) -> list[list[float | None]]:
    return [[finite_or_none(v) for v in row] for row in a]


def summarise(arm: ResolvedArm, seeds: list[int], history: History, rows: slice) -> ArmResult:
    acc = history.accuracy["test"][rows]
    final = acc[:, -1]
    finite = final[np.isfinite(final)]
    diverged = [seeds[i] for i, e in enumerate(history.diverged_at[rows]) if e is not None]
    return ArmResult(
        name=arm.name, regularizer=arm.regularizer, params=arm.params, params_source=arm.source,
        defaults_used=list(arm.defaults_used), seeds=seeds,
        test_accuracy=[finite_or_none(v) for v in final], diverged=diverged,
        mean=float(finite.mean()) if finite.size else None,
        std=float(finite.std(ddof=0)) if finite.size else None,
        std_ddof1=float(finite.std(ddof=1)) if finite.size > 1 else None,
        curves=Curves(train_loss=_rows(history.train_loss[rows]), reg_term=_rows(history.reg_term[rows]),
                      test_accuracy=_rows(acc)),
    )


def run_evaluation(
    spec: RunSpec,
    arms: list[ResolvedArm],
    dataset: Dataset,
    on_epoch: Callable[[str, int], None] | None = None,
) -> list[ArmResult]:
    """Train every arm over ``spec.evaluate.seeds`` seeds; results in the order of ``arms``."""
    seeds = list(range(spec.evaluate.seeds))
    widths = [dataset.train.x.shape[1], *spec.model.hidden, dataset.num_classes]
    out: dict[str, ArmResult] = {}
    ordered = sorted(arms, key=lambda a: a.regularizer)
    for regularizer, group in groupby(ordered, key=lambda a: a.regularizer):
        group = list(group)
        members = [
            Member(seed, arm.params["lr"], arm.params["weight_decay"],
                   {k: v for k, v in arm.params.items() if k not in ("lr", "weight_decay")})
            for arm in group for seed in seeds
        ]
        label = ", ".join(a.name for a in group)
        hook = (lambda epoch, label=label: on_epoch(label, epoch)) if on_epoch else None
        history = train_stack(dataset.train, widths, members, registry.load(regularizer),
                              spec.evaluate.epochs, spec.train, {"test": dataset.test}, hook)
        for k, arm in enumerate(group):
            out[arm.name] = summarise(arm, seeds, history, slice(k * len(seeds), (k + 1) * len(seeds)))
    return [out[a.name] for a in arms]
