"""Pruning inside stacks: stopped members stop costing, survivors are unchanged, studies count and resume right."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from conftest import SMALL_DATA, invoke, ok, small_data
from optuna.trial import TrialState
from test_workers import PG, finish, needs_pg, spawn, trials_of  # noqa: F401

from sscbench.contracts import registry, task
from sscbench.data import Split
from sscbench.engine.trainer import Member, train_stack
from sscbench.output import results
from sscbench.output.results import CompareResult, TuneResult
from sscbench.spec import TrainSpec
from sscbench.stages import tuning

WIDTHS = [40, 32, 32, 10]


@pytest.fixture(scope="module")
def small(dataset) -> Split:
    return Split(dataset.train.x[:256], dataset.train.y[:256])


def _members():
    return [Member(s, lr, 1e-3, {"lambda_ssc": lam}) for s, lr, lam in
            [(0, 3e-3, 0.1), (1, 1e-3, 0.2), (2, 5e-3, 0.0), (3, 2e-3, 0.3), (4, 4e-3, 0.05)]]


def test_pruned_members_stop_costing_and_the_stack_is_compacted(small):
    sizes: list[tuple[int, int]] = []

    def prune(epoch, indices, values):
        assert len(indices) == len(values)
        return {1, 3} if epoch == 0 else ({4} if epoch == 1 else set())

    hist = train_stack(small, WIDTHS, _members(), registry.load("ssc"), 4, TrainSpec(batch_size=32),
                       {"validation": small}, on_epoch=lambda e, model, first: sizes.append((e, model.size)),
                       prune=prune)
    assert hist.pruned_at == [None, 0, None, 0, 1]
    assert hist.member_epochs == [4, 1, 4, 1, 2]  # epochs trained: the compute each member cost
    assert sizes == [(0, 5), (1, 3), (2, 2), (3, 2)]  # the stack shrinks as soon as members stop
    assert np.isnan(hist.accuracy["validation"][1, 1:]).all() and np.isfinite(hist.accuracy["validation"][1, 0])
    assert hist.model.size == 5  # the returned stack still has every member, in order


def test_survivors_are_unchanged_by_compaction(small):
    ssc = registry.load("ssc")
    spec = TrainSpec(batch_size=32)
    pruned = train_stack(small, WIDTHS, _members(), ssc, 3, spec, {"validation": small},
                         prune=lambda e, i, v: {0, 2} if e == 0 else set())
    whole = train_stack(small, WIDTHS, _members(), ssc, 3, spec, {"validation": small})
    for k in (1, 3, 4):
        for a, b in zip(pruned.model.member(k), whole.model.member(k), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(pruned.accuracy["validation"][k], whole.accuracy["validation"][k], atol=1.5 / 256)
    for k in (0, 2):  # a stopped member keeps the parameters it had when it stopped: those after epoch 0
        after_one = train_stack(small, WIDTHS, [_members()[k]], ssc, 1, spec)
        for a, b in zip(pruned.model.member(k), after_one.model.member(0), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_without_a_pruner_nothing_is_compacted(small):
    sizes = []
    hist = train_stack(small, WIDTHS, _members(), registry.load("baseline"), 2, TrainSpec(batch_size=64),
                       on_epoch=lambda e, model, first: sizes.append(model.size))
    assert sizes == [5, 5] and hist.pruned_at == [None] * 5 and hist.member_epochs == [2] * 5


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_a_pruned_study_ends_with_exactly_the_requested_finished_trials(tmp_path, pruner):
    ok("tune", "ssc", "--pruner", pruner, "--trials", 16, "--epochs", 4, "--round-size", 4, *small_data(tmp_path),
       "--out", tmp_path)
    result = results.load(tmp_path / "tune-ssc.json", TuneResult)
    trials = result.studies[0].trials
    states = [t.state for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") == 16 and set(states) <= {"COMPLETE", "PRUNED"}
    assert states.count("PRUNED") > 0
    for t in trials:
        assert t.value is not None and 0 < t.value <= 1  # a pruned trial keeps its best value so far
        assert (t.epochs < 4) if t.state == "PRUNED" else (t.epochs == 4)
    assert result.budget.model_epochs == sum(t.epochs for t in trials) < 16 * 4
    assert result.budget.pruned == states.count("PRUNED") and result.budget.train_seconds > 0
    assert result.best.state == "COMPLETE"
    assert tuning.default_study_name(task.resolve_run(result.spec), registry.load("ssc"), 0) \
        == result.studies[0].study_name
    unpruned = result.spec.model_copy(update={"tune": result.spec.tune.model_copy(update={"pruner": "none"})})
    assert result.studies[0].study_name != tuning.default_study_name(task.resolve_run(unpruned),
                                                                     registry.load("ssc"), 0)


def test_resume_with_pruned_trials_present_ends_as_an_uninterrupted_study(tmp_path, monkeypatch):
    args = ("tune", "ssc", "--pruner", "hyperband", "--trials", 12, "--epochs", 4, "--round-size", 4,
            *small_data(tmp_path))
    ok(*args, "--out", tmp_path / "whole")
    whole = results.load(tmp_path / "whole" / "tune-ssc.json", TuneResult).studies[0].trials
    assert any(t.state == "PRUNED" for t in whole[:8])

    real = tuning.train_stack
    calls = {"n": 0}

    def crash_in_third_round(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(tuning, "train_stack", crash_in_third_round)
    assert invoke(*args, "--out", tmp_path / "cut").exit_code != 0
    storage = f"sqlite:///{(tmp_path / 'cut' / 'optuna.db').resolve()}"
    (summary,) = optuna.get_all_study_summaries(storage)
    before = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert TrialState.PRUNED in [t.state for t in before[:8]] and before[-1].state == TrialState.RUNNING
    monkeypatch.setattr(tuning, "train_stack", real)
    ok(*args, "--out", tmp_path / "cut")
    resumed = results.load(tmp_path / "cut" / "tune-ssc.json", TuneResult).studies[0].trials
    assert [(t.number, t.state, t.params, t.value, t.epochs) for t in resumed] == \
        [(t.number, t.state, t.params, t.value, t.epochs) for t in whole]


def test_the_default_has_no_pruner_and_trains_every_epoch(tmp_path):
    ok("tune", "baseline", "--trials", 4, "--epochs", 2, "--round-size", 2, "--out", tmp_path)
    result = results.load(tmp_path / "tune-baseline.json", TuneResult)
    assert result.spec.tune.pruner == "none" and result.budget.model_epochs == 8 and result.budget.pruned == 0
    assert all(t.state == "COMPLETE" and t.epochs == 2 for t in result.studies[0].trials)


def test_compare_reports_each_arms_tuning_budget(tmp_path):
    ok("compare", "--pruner", "hyperband", "--replicates", 2, "--trials", 6, "--tune-epochs", 3, "--seeds", 2,
       "--epochs", 1, *small_data(tmp_path), "--out", tmp_path)
    result = results.load(tmp_path / "compare.json", CompareResult)
    assert [b.regularizer for b in result.tuning_budgets] == ["baseline", "ssc"]
    for b in result.tuning_budgets:
        assert b.pruner == "hyperband" and b.budget.complete + b.budget.pruned == 2 * 6
        assert b.budget.model_epochs == sum(p.budget.model_epochs for rec in result.replicates for p in rec.tuning
                                            if p.regularizer == b.regularizer)
    assert "tuned at" in result.budget_note and "model-epochs" in result.budget_note
    for rec in result.replicates:  # a replicate's compute: its studies' model-epochs plus the evaluation's
        tuned = sum(p.budget.model_epochs for p in rec.tuning)
        assert rec.model_epochs == tuned + 2 * 2 * 1


def test_the_budget_note_says_when_arms_were_not_tuned_alike():
    from sscbench.output.results import ArmBudget, Budget
    from sscbench.stages.compare import budget_note

    def arm(name, epochs):
        return ArmBudget(regularizer=name, pruner="hyperband",
                         budget=Budget(model_epochs=epochs, train_seconds=1.0, complete=1))

    assert budget_note([arm("baseline", 1000), arm("ssc", 1020)]).startswith("arms tuned at equal budget")
    note = budget_note([arm("baseline", 1000), arm("ssc", 1500)])
    assert "UNEQUAL" in note and "1.50x" in note


@needs_pg
def test_workers_sharing_a_pruned_study_finish_it_exactly(tmp_path, pg_url):  # noqa: F811
    procs = [spawn("tune", "ssc", "--pruner", "hyperband", "--trials", 10, "--epochs", 3, "--round-size", 2,
                   "--storage", pg_url, "--study-name", "pruned", "--out", tmp_path / f"w{k}", cwd=tmp_path,
                   spec=SMALL_DATA)
             for k in range(2)]
    for p in procs:
        finish(p)
    trials = trials_of(pg_url, "pruned")
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 10
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    params = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(params)) == len(params)
    for k in range(2):
        record = results.load(tmp_path / f"w{k}" / "tune-ssc.json", TuneResult)
        assert record.budget.complete + record.budget.pruned == 10
