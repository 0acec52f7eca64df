"""Ablation arms, mechanism diagnostics, tuning spread and verdicts, end to end at tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import invoke, ok

from sscbench.contracts import registry
from sscbench.data import Split
from sscbench.engine import diagnostics
from sscbench.engine.trainer import Member, accuracy, member_hyperparameters, train_stack
from sscbench.output import results
from sscbench.output.results import EvaluateResult
from sscbench.spec import ArmSpec, TrainSpec
from sscbench.stages import arms
from sscbench_plugins.ssc import ssc_penalty

WIDTHS = [40, 32, 32, 10]


def test_with_ablations_adds_r_off_for_every_regularized_arm():
    spec_arms = [ArmSpec(name="baseline", regularizer="baseline"),
                 ArmSpec(name="ssc", regularizer="ssc", params={"lr": 1e-3, "weight_decay": 0.1})]
    expanded = arms.with_ablations(spec_arms)
    assert [a.name for a in expanded] == ["baseline", "ssc", "ssc-off"]
    off = expanded[-1]
    assert (off.regularizer, off.from_) == ("baseline", "ssc")
    assert arms.with_ablations(expanded) == expanded  # idempotent


def test_ablation_arm_takes_lr_and_weight_decay_only(tmp_path):
    spec_arms = arms.with_ablations([ArmSpec(name="ssc", regularizer="ssc",
                                             params={"lr": 2e-3, "weight_decay": 0.05, "lambda_ssc": 0.3})])
    ssc, off = arms.resolve(spec_arms, tmp_path)
    assert off.params == {"lr": 2e-3, "weight_decay": 0.05} and off.regularizer == "baseline"
    assert off.source == "from arm 'ssc'"


def test_from_with_override(tmp_path):
    spec_arms = [ArmSpec(name="ssc", regularizer="ssc", params={"lr": 2e-3, "weight_decay": 0.05}),
                 ArmSpec(name="ssc0", regularizer="ssc", override={"lambda_ssc": 0.0}, **{"from": "ssc"})]
    ssc, ssc0 = arms.resolve(spec_arms, tmp_path)
    assert ssc.params["lambda_ssc"] == 1e-3 and ssc.defaults_used == ("lambda_ssc",)
    assert ssc0.params == {"lr": 2e-3, "weight_decay": 0.05, "lambda_ssc": 0.0}
    assert "override lambda_ssc=0" in ssc0.source


def test_from_cycle_is_refused(tmp_path):
    spec_arms = [ArmSpec(name="a", regularizer="ssc", **{"from": "b"}),
                 ArmSpec(name="b", regularizer="ssc", **{"from": "a"})]
    with pytest.raises(arms.ArmError, match="cycle"):
        arms.resolve(spec_arms, tmp_path)


@pytest.fixture(scope="module")
def trained(dataset):
    small = Split(dataset.train.x[:512], dataset.train.y[:512])
    members = [Member(0, 3e-3, 1e-3, {"lambda_ssc": 0.0}), Member(1, 3e-3, 1e-3, {"lambda_ssc": 0.5})]
    ssc = registry.load("ssc")
    hist = train_stack(small, WIDTHS, members, ssc, 2, TrainSpec(batch_size=64))
    return hist.model, ssc, members, Split(dataset.test.x[:300], dataset.test.y[:300])


def test_gradient_ratio_is_zero_without_the_term_and_positive_with_it(trained, dataset):
    model, ssc, members, _ = trained
    probe = Split(dataset.train.x[:64], dataset.train.y[:64])
    ratio = diagnostics.gradient_norm_ratio(model, ssc, member_hyperparameters(members, ssc, "cpu"), probe, [0, 1])
    assert ratio[0] == 0 and ratio[1] > 0 and torch.isfinite(ratio).all()
    # doubling lambda doubles the term's gradient
    doubled = {"lambda_ssc": torch.tensor([0.0, 1.0])}
    ratio2 = diagnostics.gradient_norm_ratio(model, ssc, doubled, probe, [0, 1])
    assert float(ratio2[1]) == pytest.approx(2 * float(ratio[1]), rel=1e-4)


def test_consistency_is_the_ssc_quantity_on_the_whole_split(trained):
    model, _, _, test = trained
    sal = diagnostics.saliency(model, test)
    assert sal.shape == (2, 300, 40)
    values = diagnostics.consistency(sal, test.y, 10)
    for s in range(2):
        assert float(values[s]) == pytest.approx(float(ssc_penalty(sal[s], test.y)), rel=1e-5)


def test_spectrum_by_class_is_a_mean_of_unit_spectra(trained):
    model, _, _, test = trained
    spectra = diagnostics.spectrum_by_class(diagnostics.saliency(model, test), test.y, 10)
    assert spectra.shape == (2, 10, 21)
    norms = spectra.norm(dim=-1)
    assert (spectra >= 0).all() and (norms <= 1 + 1e-5).all() and (norms > 0.5).all()


def test_shift_accuracy_at_zero_is_accuracy(trained):
    model, _, _, test = trained
    shifted = diagnostics.shift_accuracy(model, test)
    assert shifted.shape == (2, 17)
    torch.testing.assert_close(shifted[:, diagnostics.SHIFTS.index(0)], accuracy(model, test))
    rolled = Split(torch.roll(test.x, 3, dims=-1), test.y)
    torch.testing.assert_close(shifted[:, diagnostics.SHIFTS.index(3)], accuracy(model, rolled))


def test_identical_arms_get_no_detectable_difference(tmp_path, monkeypatch):
    from sscbench.stages import evaluation

    sizes = []
    real = evaluation.train_stack
    monkeypatch.setattr(evaluation, "train_stack", lambda train, widths, members, *a, **k: (
        sizes.append(len(members)), real(train, widths, members, *a, **k))[1])
    spec = tmp_path / "spec.toml"
    spec.write_text('[[evaluate.arms]]\nname = "baseline"\nregularizer = "baseline"\n'
                    'params = { lr = 3e-3, weight_decay = 1e-3 }\n'
                    '[[evaluate.arms]]\nname = "twin"\nregularizer = "baseline"\n'
                    'params = { lr = 3e-3, weight_decay = 1e-3 }\n')
    res = ok("evaluate", "--spec", spec, "--seeds", 3, "--epochs", 1, "--out", tmp_path)
    assert "Paired comparison with 'baseline'" in res.output
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    (c,) = result.comparisons
    assert (c.arm, c.reference, c.verdict, c.mean_diff, c.p_ttest) == ("twin", "baseline",
                                                                      "no detectable difference", 0.0, 1.0)
    base, twin = result.arms
    assert base.test_accuracy == twin.test_accuracy  # paired seeds: same init, same batches
    assert sizes == [3]  # one configuration, trained once for both arms


def test_evaluate_stores_statistics_and_diagnostics(tmp_path):
    ok("tune", "ssc", "--trials", 2, "--epochs", 1, "--studies", 2, "--out", tmp_path)
    ok("tune", "baseline", "--trials", 2, "--epochs", 1, "--out", tmp_path)
    ok("evaluate", "--seeds", 3, "--epochs", 2, "--ablations", "--out", tmp_path)
    result = results.load(tmp_path / "evaluate.json", EvaluateResult)
    assert [a.name for a in result.arms] == ["baseline", "ssc", "ssc-off"]
    assert result.reference == "baseline" and [c.arm for c in result.comparisons] == ["ssc", "ssc-off"]
    by_name = {a.name: a for a in result.arms}
    ssc, off, base = by_name["ssc"], by_name["ssc-off"], by_name["baseline"]
    assert off.params == {k: ssc.params[k] for k in ("lr", "weight_decay")}
    for arm in result.arms:
        d = arm.diagnostics
        assert len(d.reg_share) == len(d.grad_norm_ratio) == 2 and len(d.shift_accuracy) == 17
        assert d.spectral_consistency is not None and len(d.spectrum_by_class) == 10
        assert d.shift_accuracy[d.shifts.index(0)] == pytest.approx(arm.mean)
        assert arm.summary.ci_low <= arm.summary.mean <= arm.summary.ci_high
    assert all(v == 0 for v in base.diagnostics.grad_norm_ratio + off.diagnostics.reg_share)
    assert all(v > 0 for v in ssc.diagnostics.grad_norm_ratio + ssc.diagnostics.reg_share)
    spread = ssc.tuning_spread
    assert spread is not None and len(spread.configs) == 2 and base.tuning_spread is None
    own = [c for c in spread.configs if c.params == ssc.params]
    assert own and own[0].test_accuracy == ssc.test_accuracy
    assert spread.min <= ssc.mean <= spread.max
    means = np.array([c.mean for c in spread.configs])
    assert spread.std_ddof1 == pytest.approx(means.std(ddof=1))


def test_unknown_reference_is_refused(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('[[evaluate.arms]]\nname = "a"\nregularizer = "baseline"\n'
                    'params = { lr = 1e-3, weight_decay = 0 }\n')
    res = invoke("evaluate", "--spec", spec, "--reference", "nope", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "reference arm 'nope'" in res.output and not (tmp_path / "o").exists()
