"""Workloads as plugins: discovery, the default's unchanged numbers, stacks of any model, CLI, refusals."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke, ok
from torch import nn

from sscbench import data
from sscbench.contracts import registry, task
from sscbench.data import Dataset, Split
from sscbench.engine.stack import StackedModule
from sscbench.engine.trainer import Member, train_stack
from sscbench.output import results
from sscbench.regularizer import BatchContext
from sscbench.spec import DataSpec, RunSpec, SpecError, TrainSpec, WorkloadSpec, build_spec
from sscbench.stages import workflow
from sscbench.workload import Shape, Workload

BUILTIN = ("mnist1d-mlp", "mnist1d-cnn", "mnist1d-shuffled", "mnist1d-noisy")
GOLDEN = Path(__file__).parent / "data" / "default-workload-golden.json"


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch):
    from sscbench import cli

    monkeypatch.setattr(cli.console, "width", 200)


# -- the default workload's numbers, against those stored before workloads existed --------------

GOLDEN_RUN = """
import json, sys, tempfile
from pathlib import Path
from sscbench.contracts import task
from sscbench.stages import workflow
from sscbench.spec import build_spec
out = Path(tempfile.mkdtemp())
fixed = {"lr": 3e-3, "weight_decay": 1e-3}
spec = build_spec(None, {"tune": {"trials": 4, "epochs": 2, "round_size": 4}, "evaluate": {"seeds": 2, "epochs": 2,
    "arms": [{"name": "baseline", "regularizer": "baseline", "params": fixed},
             {"name": "ssc", "regularizer": "ssc", "params": fixed | {"lambda_ssc": 0.3}}]}})
tuned, _ = workflow.tune(task.resolve_run(spec, ["ssc"]), "ssc", out)
ev, _, _ = workflow.evaluate(task.resolve_run(spec), out)
print(json.dumps({"tune": [{"params": t.params, "value": t.value} for t in tuned.studies[0].trials],
                  "evaluate": {a.name: {"test_accuracy": a.test_accuracy, "train_loss": a.curves.train_loss,
                                        "reg_term": a.curves.reg_term} for a in ev.arms}}))
print(ev.provenance.cpu.model_dump_json())
"""


def _identity(cpu: dict) -> tuple:
    return cpu["vendor"], cpu["family"], cpu["model"], cpu["torch_kernels"]


def _run_golden_case(kernels: str | None) -> tuple[dict, dict]:
    # torch's own thread count, as when the case was stored: a matmul's sums depend on how it is split. Its
    # threads sleep rather than spin while they wait (OMP_WAIT_POLICY changes no sum): with the cores busy with other
    # processes, spinning threads made this case about 1.7x slower (35 and 33 s against 23 and 18 s, Zen 5).
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")}
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    if kernels is not None:
        env["ATEN_CPU_CAPABILITY"] = kernels
    done = subprocess.run([sys.executable, "-c", GOLDEN_RUN], capture_output=True, text=True, env=env, check=True)
    numbers, cpu = done.stdout.strip().splitlines()[-2:]
    return json.loads(numbers), json.loads(cpu)


@pytest.mark.parametrize("kernels", [None, "avx2"])
def test_default_workload_numbers_are_those_stored_before_workloads(kernels):
    """Bit for bit on the CPU kind (and kernel level) a case was stored on; elsewhere to float tolerance.

    TPE's first trials are random draws, so their hyperparameters are exact on every CPU.
    """
    stored = json.loads(GOLDEN.read_text())["cases"]
    numbers, cpu = _run_golden_case(kernels)
    same = [c for c in stored if _identity(c["cpu"]) == _identity(cpu)]
    assert [t["params"] for t in numbers["tune"]] == [t["params"] for t in stored[0]["numbers"]["tune"]]
    if same:
        assert numbers == same[0]["numbers"]  # exact: every trial value, accuracy and loss
        return
    reference = min(stored, key=lambda c: c["cpu"]["torch_kernels"] != cpu["torch_kernels"])["numbers"]
    np.testing.assert_allclose([t["value"] for t in numbers["tune"]], [t["value"] for t in reference["tune"]],
                               atol=0.01)
    for arm, values in reference["evaluate"].items():
        np.testing.assert_allclose(numbers["evaluate"][arm]["test_accuracy"], values["test_accuracy"], atol=0.01)
        np.testing.assert_allclose(numbers["evaluate"][arm]["train_loss"], values["train_loss"], rtol=1e-3)


# -- discovery and the interface ------------------------------------------------------------------

def test_builtins_are_discovered_from_the_sscbench_distribution():
    found = registry.WORKLOADS.discover()
    assert set(BUILTIN) <= set(found)
    assert found["mnist1d-cnn"].distribution == "sscbench"


def test_an_unknown_workload_is_refused_with_the_list_and_a_suggestion(tmp_path):
    res = invoke("tune", "baseline", "--workload", "mnist1d-cn", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "unknown workload 'mnist1d-cn'" in res.output
    assert "Did you mean 'mnist1d-cnn'" in res.output and "mnist1d-shuffled" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", BUILTIN)
def test_member_s_is_the_module_built_after_manual_seed_s(name):
    resolved = task.resolve(RunSpec(workload=WorkloadSpec(name=name)))
    stack = resolved.architecture().stack([0, 7])
    torch.manual_seed(7)
    mine = resolved.workload.model(resolved.args, resolved.shape)
    for ours, theirs in zip(stack.member(1), mine.parameters(), strict=True):
        assert torch.equal(ours, theirs.detach())


def test_the_mlp_workloads_take_the_specialised_stack_and_the_cnn_the_generic_one():
    kinds = {name: type(task.resolve(RunSpec(workload=WorkloadSpec(name=name))).architecture().stack([0])).__name__
             for name in BUILTIN}
    assert kinds == {"mnist1d-mlp": "StackedMLP", "mnist1d-cnn": "StackedModule", "mnist1d-shuffled": "StackedMLP",
                     "mnist1d-noisy": "StackedMLP"}


def test_variants_are_other_data_cached_under_their_own_names():
    small = DataSpec(num_samples=600, validation_size=100)
    paths = {name: data.cache_path(small, extra=task.resolve(RunSpec(workload=WorkloadSpec(name=name), data=small))
                                   .workload.variant or None) for name in BUILTIN}
    assert paths["mnist1d-mlp"] == paths["mnist1d-cnn"] == data.cache_path(small)  # the same task, two models
    assert len({paths["mnist1d-mlp"], paths["mnist1d-shuffled"], paths["mnist1d-noisy"]}) == 3
    sets = {name: task.resolve(RunSpec(workload=WorkloadSpec(name=name), data=small)).dataset() for name in BUILTIN}
    base, shuffled = sets["mnist1d-mlp"].train, sets["mnist1d-shuffled"].train
    assert torch.equal(base.y, shuffled.y) and not torch.equal(base.x, shuffled.x)
    assert not torch.equal(base.x, sets["mnist1d-noisy"].train.x)


def test_workload_arguments_are_validated_filled_in_and_recorded():
    spec = build_spec(None, {"workload": {"name": "mnist1d-cnn", "args": {"channels": 8}}},
                      beneath=task.spec_defaults)
    assert task.normalise(spec).workload.args == {"channels": 8}
    assert task.normalise(RunSpec()).workload.args == {"hidden": [256, 256]}
    with pytest.raises(SpecError, match=r"workload.args.hidden: Extra inputs are not permitted"):
        task.normalise(RunSpec(workload=WorkloadSpec(name="mnist1d-cnn", args={"hidden": [8]})))
    with pytest.raises(SpecError, match=r"workload.args.channels: Input should be greater than 0"):
        task.normalise(RunSpec(workload=WorkloadSpec(name="mnist1d-cnn", args={"channels": 0})))


def test_the_pre_workload_model_section_reads_as_the_mlp_arguments():
    spec = RunSpec.model_validate({"model": {"hidden": [64, 32]}})
    assert spec.workload == WorkloadSpec(name="mnist1d-mlp", args={"hidden": [64, 32]})
    with pytest.raises(ValueError, match="model"):
        RunSpec.model_validate({"model": {"depth": 3}})


def test_study_names_differ_by_workload_and_arguments():
    from sscbench.stages.tuning import default_study_name

    ssc = registry.load("ssc")
    names = {default_study_name(task.resolve_run(RunSpec(workload=WorkloadSpec(name=n, args=a))), ssc, 0)
             for n, a in [("mnist1d-mlp", {}), ("mnist1d-mlp", {"hidden": [256, 256]}),
                          ("mnist1d-mlp", {"hidden": [64]}), ("mnist1d-cnn", {}), ("mnist1d-shuffled", {})]}
    assert len(names) == 4  # the filled-in default arguments name the same study as omitted ones


# -- the generic stack trains like the specialised one promises -----------------------------------

@pytest.fixture(scope="module")
def small(dataset) -> Split:
    return Split(dataset.train.x[:256], dataset.train.y[:256])


def _cnn():
    return task.resolve(RunSpec(workload=WorkloadSpec(name="mnist1d-cnn", args={"channels": 6}))).architecture()


def test_a_cnn_member_in_a_stack_matches_its_solo_run(small):
    arch, ssc = _cnn(), registry.load("ssc")
    members = [Member(s, 3e-3, 1e-2, {"lambda_ssc": lam}) for s, lam in [(0, 0.1), (1, 0.5), (2, 0.0)]]
    spec = TrainSpec(batch_size=32)
    stacked = train_stack(small, arch, members, ssc, 2, spec, {"val": small})
    for index, member in enumerate(members):
        alone = train_stack(small, arch, [member], ssc, 2, spec, {"val": small})
        for a, b in zip(stacked.model.member(index), alone.model.member(0), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stacked.accuracy["val"][index], alone.accuracy["val"][0], atol=1.5 / len(small))


def test_a_cnn_stack_is_deterministic_and_isolates_a_diverging_member(small):
    arch, ssc = _cnn(), registry.load("ssc")
    good = [Member(0, 3e-3, 0.0, {"lambda_ssc": 0.1}), Member(1, 3e-3, 0.0, {"lambda_ssc": 0.1})]
    bad = Member(5, 3e-3, 0.0, {"lambda_ssc": math.inf})
    spec = TrainSpec(batch_size=64)
    mixed = train_stack(small, arch, [good[0], bad, good[1]], ssc, 2, spec, {"val": small})
    again = train_stack(small, arch, [good[0], bad, good[1]], ssc, 2, spec, {"val": small})
    clean = train_stack(small, arch, good, ssc, 2, spec, {"val": small})
    assert mixed.diverged_at == [None, 0, None] and again.diverged_at == mixed.diverged_at
    assert torch.equal(mixed.model.flat, again.model.flat)  # deterministic, bit for bit
    for mixed_index, clean_index in ((0, 0), (2, 1)):
        for a, b in zip(mixed.model.member(mixed_index), clean.model.member(clean_index), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_cnn_stack_split_for_memory_gives_the_same_members(small):
    arch, baseline = _cnn(), registry.load("baseline")
    members = [Member(s, 3e-3, 1e-3) for s in range(4)]
    whole = train_stack(small, arch, members, baseline, 1, TrainSpec(batch_size=64))
    split = train_stack(small, arch, members, baseline, 1, TrainSpec(batch_size=64), capacity=2)
    assert isinstance(split.model, StackedModule) and split.model.size == 4
    torch.testing.assert_close(whole.model.flat, split.model.flat, rtol=1e-5, atol=1e-6)


def test_inputs_are_per_member_so_input_gradients_never_mix(small):
    arch = _cnn()
    stack = arch.stack([0, 1]).requires_grad_(True)
    x = small.x[:8].expand(2, 8, 40).clone().requires_grad_(True)
    y = small.y[:8].expand(2, 8)
    ctx = BatchContext(x, y, stack(x), seeds=[0, 1])
    torch.manual_seed(1)
    alone = arch.module(1)
    x1 = small.x[:8].clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(alone(x1).gather(-1, y[1][:, None]).sum(), x1)
    torch.testing.assert_close(ctx.saliency[1], g1, rtol=1e-5, atol=1e-6)


# -- CLI ----------------------------------------------------------------------------------------

def test_workloads_lists_the_builtins():
    out = ok("workloads").output
    for name in BUILTIN:
        assert name in out
    assert "channels = 25" in out and "hidden = (256, 256)" in out and "[40] / 10" in out


def test_reproduce_on_the_cnn_workload_end_to_end(tmp_path):
    ok("reproduce", "--workload", "mnist1d-cnn", "--trials", 2, "--tune-epochs", 1, "--seeds", 2, "--epochs", 1,
       "--out", tmp_path)
    evaluated = results.load(tmp_path / "evaluate.json", results.EvaluateResult)
    assert evaluated.spec.workload == WorkloadSpec(name="mnist1d-cnn", args={"channels": 25})
    assert [a.name for a in evaluated.arms] == ["baseline", "ssc"] and all(a.mean > 0.1 for a in evaluated.arms)
    tuned = results.load(tmp_path / "tune-ssc.json", results.TuneResult)
    assert tuned.spec.workload.name == "mnist1d-cnn" and tuned.studies[0].study_name.startswith("ssc-s0-")
    assert (tmp_path / "evaluate.png").exists()


class _Images(Workload):
    """A 2-D workload made up here, to meet a plugin that needs 1-D signals."""

    name = "images"
    description = "random 6x6 images"

    def shape(self, args, data_spec):
        return Shape((6, 6), 3)

    def data(self, args, data_spec):
        gen = torch.Generator().manual_seed(data_spec.seed)
        x, y = torch.randn(300, 6, 6, generator=gen), torch.randint(0, 3, (300,), generator=gen)
        return Dataset(Split(x[:150], y[:150]), Split(x[150:200], y[150:200]), Split(x[200:], y[200:]), 3)

    def model(self, args, shape):
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 3))


class _EP:
    def __init__(self, name, cls):
        self.name, self.value, self.dist, self._cls = name, f"tests:{cls.__name__}", None, cls

    def load(self):
        return self._cls


@pytest.fixture
def with_images(monkeypatch):
    real = registry.WORKLOADS.entry_points
    monkeypatch.setattr(registry.WORKLOADS, "entry_points", lambda: [*real(), _EP("images", _Images)])
    registry.WORKLOADS.cache_clear()
    yield
    registry.WORKLOADS.cache_clear()


def test_an_incompatible_plugin_is_refused_before_any_training(with_images, tmp_path):
    out = tmp_path / "out"
    for args in (["tune", "ssc"], ["reproduce", "--arms", "baseline,ssc"], ["compare", "--replicates", 2],
                 ["check-plugin", "ssc"]):
        res = invoke(*args, "--workload", "images", *(["--out", out] if args[0] != "check-plugin" else []))
        assert res.exit_code == 2, (args, res.output)
        assert "regularizer 'ssc' cannot run on workload 'images'" in res.output and "[6, 6]" in res.output
        assert "Traceback" not in res.output and not out.exists()
    from sscbench.contracts import checks

    assert "images" not in checks.accepted_workloads(registry.load("ssc"))


def test_a_2d_workload_trains_and_evaluates_without_saliency_spectra(with_images, tmp_path):
    spec = build_spec(None, {"workload": {"name": "images"}, "tune": {"trials": 2, "epochs": 1},
                             "data": {"validation_size": 50},
                             "evaluate": {"seeds": 2, "epochs": 1, "arms": [
                                 {"name": "baseline", "regularizer": "baseline"},
                                 {"name": "gradnorm", "regularizer": "gradnorm"}]}})
    for plugin in ("baseline", "gradnorm"):
        workflow.tune(task.resolve_run(spec, [plugin]), plugin, tmp_path)
    result, _, png = workflow.evaluate(task.resolve_run(spec), tmp_path)
    assert png.exists() and [a.name for a in result.arms] == ["baseline", "gradnorm"]
    for arm in result.arms:
        assert arm.diagnostics.spectral_consistency is None and arm.diagnostics.spectrum_by_class == []
        assert all(v is not None and v > 0 for v in arm.test_accuracy)


def test_compare_over_workloads_gives_a_row_per_workload_and_arm(tmp_path):
    res = ok("compare", "--workloads", "mnist1d-mlp,mnist1d-shuffled", "--replicates", 2, "--trials", 2,
             "--tune-epochs", 1, "--seeds", 2, "--epochs", 1, "--out", tmp_path)
    assert "The same comparison on every workload" in res.output
    combined = results.load(tmp_path / "compare-workloads.json", results.WorkloadsCompareResult)
    assert combined.workloads == ["mnist1d-mlp", "mnist1d-shuffled"]
    assert [r.spec.workload.name for r in combined.results] == combined.workloads
    for name in combined.workloads:
        assert (tmp_path / name / "compare.json").exists()
    assert (tmp_path / "compare-workloads.png").exists()
    first = combined.results[0].replicates[0].arms[0].test_accuracy
    assert first != combined.results[1].replicates[0].arms[0].test_accuracy  # other data, other numbers
    again = ok("report", "--out", tmp_path)
    assert "mnist1d-shuffled" in again.output and "compare-workloads.png" in again.output


def test_workload_and_workloads_together_are_refused(tmp_path):
    res = invoke("compare", "--workload", "mnist1d-mlp", "--workloads", "mnist1d-cnn", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "not both" in res.output and not (tmp_path / "o").exists()


def test_workload_defaults_sit_beneath_the_spec_file(monkeypatch, tmp_path):
    class Longer(_Images):
        name = "longer"
        defaults = {"evaluate": {"epochs": 40, "seeds": 3}}

    monkeypatch.setattr(registry.WORKLOADS, "entry_points", lambda: [_EP("longer", Longer)])
    registry.WORKLOADS.cache_clear()
    try:
        path = tmp_path / "spec.toml"
        path.write_text('[workload]\nname = "longer"\n[evaluate]\nseeds = 7\n')
        spec = build_spec(path, None, beneath=task.spec_defaults)
        assert (spec.evaluate.epochs, spec.evaluate.seeds) == (40, 7)
    finally:
        registry.WORKLOADS.cache_clear()



def test_a_workload_name_registered_twice_is_an_error_naming_both(monkeypatch):
    class FakeDist:
        def __init__(self, name):
            self.metadata, self.version = {"Name": name}, "1.0"

    a, b = _EP("images", _Images), _EP("images", _Images)
    a.dist, b.dist, b.value = FakeDist("dist-a"), FakeDist("dist-b"), "other:Images"
    monkeypatch.setattr(registry.WORKLOADS, "entry_points", lambda: [a, b])
    with pytest.raises(registry.PluginError, match="workload 'images' is registered twice: by dist-a.*by dist-b"):
        registry.WORKLOADS.discover()


def test_the_cnn_tunes_over_its_own_lr_range_and_the_mlp_protocol_keeps_the_seeds():
    def lr(name: str) -> tuple[float, float]:
        spec = build_spec(None, {"workload": {"name": name}}, beneath=task.spec_defaults)
        return spec.tune.lr.low, spec.tune.lr.high

    assert lr("mnist1d-cnn") == (1e-3, 1e-1)  # measured: both arms tuned to the top of [1e-4, 1e-2]
    for name in ("mnist1d-mlp", "mnist1d-shuffled", "mnist1d-noisy"):
        assert lr(name) == (1e-4, 1e-2)
