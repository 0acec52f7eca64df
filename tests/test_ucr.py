"""UCR workloads: files checked against their sha256, labels, z-normalisation, stratified resamples, the FCN."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch
from conftest import invoke

from sscbench import data
from sscbench.contracts import registry, task
from sscbench.data import DataError
from sscbench.engine.trainer import Member, train_stack
from sscbench.spec import DataSpec, RunSpec, TrainSpec, WorkloadSpec, build_spec
from sscbench_plugins import ucr

UCR = ("ucr-forda", "ucr-crop", "ucr-electricdevices")


def test_the_three_workloads_are_registered_and_read_the_archives_shapes():
    for name, (train, test, length, classes) in zip(UCR, ((3601, 1320, 500, 2), (7200, 16800, 46, 24),
                                                           (8926, 7711, 96, 7)), strict=True):
        workload = registry.load_workload(name)
        arrays = ucr.archive_arrays(workload.archive)
        assert arrays["x"].shape == (train, length) and arrays["x_test"].shape == (test, length)
        assert sorted(set(arrays["y"].tolist())) == list(range(classes))
        assert workload.shape(workload.Args(), DataSpec()).classes == classes


def test_labels_map_in_sorted_numeric_order():
    assert ucr.label_map(np.array([1.0, -1.0]), np.array([-1.0])) == {-1.0: 0, 1.0: 1}
    assert ucr.label_map(np.array([10.0, 2.0, 1.0])) == {1.0: 0, 2.0: 1, 10.0: 2}  # not "1" < "10" < "2"
    labels, series = ucr.parse_tsv(b"-1\t0.5\t1.5\n1\t2\t4\n")
    assert labels.tolist() == [-1.0, 1.0] and series.tolist() == [[0.5, 1.5], [2.0, 4.0]]
    forda = ucr.archive_arrays("FordA")
    raw, _ = ucr.parse_tsv(data.verified_bytes(ucr.archive_file("FordA", "TRAIN"), ucr.FILES["FordA"]["TRAIN"]))
    assert ((raw == 1.0) == (forda["y"] == 1)).all()


def test_every_series_is_z_normalised_and_a_constant_one_becomes_zeros():
    x = ucr.znormalise(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(x[0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert x[1].tolist() == [0.0, 0.0, 0.0]
    crop = ucr.archive_arrays("Crop")
    np.testing.assert_allclose(crop["x_test"].mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(crop["x_test"].std(1)[crop["x_test"].std(1) > 0], 1, atol=1e-4)


def test_a_changed_file_is_refused_in_one_line_naming_it_and_nothing_trains(monkeypatch, tmp_path):
    changed = tmp_path / "FordA_TRAIN.tsv"
    changed.write_bytes(ucr.archive_file("FordA", "TRAIN").read_bytes()[:-100])  # truncated
    with pytest.raises(DataError, match="FordA_TRAIN.tsv is not the file"):
        data.verified_bytes(changed, ucr.FILES["FordA"]["TRAIN"])
    with pytest.raises(DataError, match="cannot read"):
        data.verified_bytes(tmp_path / "missing.tsv", ucr.FILES["FordA"]["TRAIN"])
    monkeypatch.setenv("SSCBENCH_CACHE", str(tmp_path / "cache"))  # nothing cached: the files are read
    monkeypatch.setattr(ucr, "archive_file", lambda name, part: changed)
    res = invoke("reproduce", "--workload", "ucr-forda", "--trials", 1, "--tune-epochs", 1, "--seeds", 1,
                 "--epochs", 1, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "FordA_TRAIN.tsv is not the file" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "tune-baseline.json").exists()


def test_without_the_package_the_workloads_are_listed_unavailable_and_refused_in_one_line(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    listed = invoke("workloads")
    assert listed.exit_code == 0 and listed.output.count("unavailable") == 3
    res = invoke("reproduce", "--workload", "ucr-crop", "--out", tmp_path)
    assert res.exit_code == 2 and "pip install 'sscbench[ucr]'" in " ".join(res.output.split())
    assert "Traceback" not in res.output and not any(tmp_path.iterdir())
    checked = invoke("check-plugin", "labelsmooth")  # the contract checks go on without them
    assert checked.exit_code == 0 and checked.output.count("pass") == 6 * 4 and "ucr" not in checked.output
    assert invoke("check-plugin", "labelsmooth", "--workload", "ucr-forda").exit_code == 2


def test_replicate_zero_is_the_archives_split_and_others_stratified_resamples():
    arrays = ucr.archive_arrays("ElectricDevices")
    assert ucr.resample(arrays, 42, 42) is arrays
    counts = {part: np.bincount(arrays[part], minlength=7) for part in ("y", "y_test")}
    draws = [ucr.resample(arrays, seed, 42) for seed in (43, 44)]
    for drawn in draws:
        for part in ("y", "y_test"):
            assert np.bincount(drawn[part], minlength=7).tolist() == counts[part].tolist()
        pooled = np.concatenate([drawn["x"], drawn["x_test"]])
        assert pooled.shape[0] == arrays["x"].shape[0] + arrays["x_test"].shape[0]
        assert not np.array_equal(drawn["x"], arrays["x"])
    assert not np.array_equal(draws[0]["x"], draws[1]["x"])
    np.testing.assert_array_equal(ucr.resample(arrays, 43, 42)["x"], draws[0]["x"])  # seeded: the same draw


def test_validation_is_a_stratified_part_of_the_train_set():
    workload = registry.load_workload("ucr-crop")
    spec = build_spec(None, {"workload": {"name": "ucr-crop"}}, beneath=task.spec_defaults)
    assert spec.data.validation_size == 1440  # the workload's default
    dataset = workload.data(workload.Args(), spec.data)
    assert len(dataset.validation) == 1440 and len(dataset.train) == 7200 - 1440 and len(dataset.test) == 16800
    shares = np.bincount(dataset.validation.y.numpy(), minlength=24) / 1440
    whole = np.bincount(ucr.archive_arrays("Crop")["y"], minlength=24) / 7200
    np.testing.assert_allclose(shares, whole, atol=1 / 1440)
    train = {tuple(row) for row in dataset.train.x[:200].numpy().round(5)}
    assert not train & {tuple(row) for row in dataset.validation.x.numpy().round(5)}


@pytest.fixture
def small_series():
    arrays = ucr.archive_arrays("ElectricDevices")
    return data.Split(torch.from_numpy(arrays["x"][:96]), torch.from_numpy(arrays["y"][:96]))


def test_an_fcn_member_in_a_stack_matches_its_solo_run(small_series):
    run = task.resolve_run(RunSpec(workload=WorkloadSpec(name="ucr-electricdevices",
                                                         args={"channels": [4, 8, 4]})))
    arch, ssc = run.architecture, registry.load("ssc")
    members = [Member(s, 3e-3, 1e-2, {"lambda_ssc": lam}) for s, lam in [(0, 0.1), (1, 0.5)]]
    spec = TrainSpec(batch_size=32)
    stacked = train_stack(small_series, arch, members, ssc, 2, spec, {"val": small_series})
    for index, member in enumerate(members):
        alone = train_stack(small_series, arch, [member], ssc, 2, spec, {"val": small_series})
        for a, b in zip(stacked.model.member(index), alone.model.member(0), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_samples_never_interact_in_the_fcn():
    torch.manual_seed(0)
    model = ucr.FCN((4, 8, 4), 3)
    x = torch.randn(5, 50)
    whole = model(x)
    for k in range(5):
        torch.testing.assert_close(model(x[k:k + 1])[0], whole[k], rtol=1e-5, atol=1e-6)


def test_large_tensors_reuse_freed_memory_on_glibc():
    import platform

    from sscbench.engine import host

    applied = host.keep_freed_memory()
    assert applied is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_diagnostics_of_a_split_larger_than_a_pass_equal_one_pass(monkeypatch):
    from sscbench.engine import diagnostics

    torch.manual_seed(0)
    run = task.resolve_run(RunSpec(workload=WorkloadSpec(name="ucr-crop", args={"channels": [4, 8, 4]})))
    model = run.architecture.stack([0, 1])
    arrays = ucr.archive_arrays("Crop")
    split = data.Split(torch.from_numpy(arrays["x"][:300]), torch.from_numpy(arrays["y"][:300]))
    whole = diagnostics.saliency(model, split), diagnostics.shift_accuracy(model, split)
    monkeypatch.setattr(diagnostics, "CHUNK", 64)
    parts = diagnostics.saliency(model, split), diagnostics.shift_accuracy(model, split)
    torch.testing.assert_close(parts[0], whole[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(parts[1], whole[1])


def test_a_tiny_compare_over_two_ucr_workloads_resamples_its_replicates(tmp_path, monkeypatch):
    from conftest import ok

    from sscbench.output import export, results

    whole = ucr.archive_arrays

    def every_tenth(name):  # the archives at a tenth of their size (every class kept), so the suite stays quick
        return {key: value[::10] for key, value in whole(name).items()}

    monkeypatch.setattr(ucr, "archive_arrays", every_tenth)
    spec = tmp_path / "spec.toml"
    spec.write_text('[data]\nvalidation_size = 60\n'
                    '[workload]\nargs = { channels = [4, 8, 4] }\n'  # small, and no tuning: fixed values
                    '[[evaluate.arms]]\nname = "baseline"\nregularizer = "baseline"\n'
                    'params = { lr = 3e-3, weight_decay = 1e-3 }\n'
                    '[[evaluate.arms]]\nname = "ssc"\nregularizer = "ssc"\n'
                    'params = { lr = 3e-3, weight_decay = 1e-3, lambda_ssc = 0.1 }\n')
    res = ok("compare", "--spec", spec, "--workloads", "ucr-forda,ucr-crop", "--replicates", 2, "--seeds", 2,
             "--epochs", 1, "--out", tmp_path / "out")
    both = results.load(tmp_path / "out" / "compare-workloads.json", results.WorkloadsCompareResult)
    for result in both.results:
        assert [r.data_seed for r in result.replicates] == [42, 43]
        assert "archive resampled" in result.derivation["data_seed"] and "data resample" in result.covers
        assert result.resampled
        first, second = ([a.test_accuracy for a in r.arms] for r in result.replicates)
        assert first != second
    assert "ucr-forda" in res.output and "ucr-crop" in res.output
    columns, rows = export.rows(both)  # an export says which replicates are resamples
    assert {row["resampled"] for row in rows} == {"true"} and len(rows) == 2 * 2 * 2 * 2


def test_a_saliency_pass_over_long_series_is_cut_to_fit_memory(monkeypatch):
    from sscbench.engine import trainer

    forda = task.resolve_run(RunSpec(workload=WorkloadSpec(name="ucr-forda"))).architecture
    mlp = task.resolve_run(RunSpec()).architecture
    per = forda.activation_bytes_per_sample()
    monkeypatch.setattr(trainer, "free_memory_bytes", lambda device: 2 * 100 * 5 * trainer.SALIENCY_COPIES * per)
    assert trainer.diagnostic_chunk(forda, 5, torch.device("cpu")) == 100  # 5 members of 500-long series
    assert trainer.diagnostic_chunk(forda, 10, torch.device("cpu")) == 50
    assert trainer.diagnostic_chunk(mlp, 5, torch.device("cpu")) == 4096  # mnist1d: one pass, as always
    monkeypatch.setattr(trainer, "free_memory_bytes", lambda device: 0)
    assert trainer.diagnostic_chunk(forda, 5, torch.device("cpu")) == 1


def test_a_forda_stack_that_would_not_fit_is_split_not_killed(monkeypatch):
    from sscbench.engine import trainer

    run = task.resolve_run(RunSpec(workload=WorkloadSpec(name="ucr-forda", args={"channels": [4, 8, 4]})))
    arch = run.architecture
    monkeypatch.setattr(trainer, "free_memory_bytes", lambda device: 2 * 2 * arch.bytes_per_member(32))
    assert trainer.stack_capacity(arch, 32, torch.device("cpu")) == 2
    arrays = ucr.archive_arrays("FordA")
    small = data.Split(torch.from_numpy(arrays["x"][:64]), torch.from_numpy(arrays["y"][:64]))
    seen = []
    members = [Member(s, 3e-3, 1e-3) for s in range(5)]
    history = train_stack(small, arch, members, registry.load("baseline"), 1, TrainSpec(batch_size=32),
                          on_epoch=lambda e, model, first: seen.append((first, model.size)))
    assert seen == [(0, 2), (2, 2), (4, 1)] and history.model.size == 5


@pytest.mark.parametrize("name", ["ucr-forda", "ucr-crop", "ucr-electricdevices"])
def test_each_archive_workload_tunes_over_the_fcns_range_and_crop_evaluates_longer(name):
    spec = build_spec(None, {"workload": {"name": name}}, beneath=task.spec_defaults)
    assert (spec.tune.lr.low, spec.tune.lr.high) == (1e-3, 1e-1)
    assert spec.evaluate.epochs == (60 if name == "ucr-crop" else 30)
    assert (spec.tune.trials, spec.tune.epochs, spec.evaluate.seeds) == (30, 15, 5)  # the protocol's
