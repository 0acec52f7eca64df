"""The data module: protocol splits, caching keyed by arguments, RNG state untouched."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sscbench import data
from sscbench.spec import DataSpec


def test_protocol_splits(dataset):
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (7000, 1000, 2000)
    assert dataset.train.x.shape == (7000, 40) and dataset.train.x.dtype == torch.float32
    assert dataset.train.y.dtype == torch.int64 and dataset.num_classes == 10
    # mnist1d generates num_samples // 10 per class before the split: 1000 of each overall
    counts = torch.bincount(torch.cat([dataset.train.y, dataset.validation.y, dataset.test.y]))
    assert counts.tolist() == [1000] * 10


def test_validation_is_the_last_1000_train_samples(dataset):
    raw = data.load_arrays(DataSpec())
    assert np.array_equal(dataset.train.x.numpy(), raw["x"][:7000])
    assert np.array_equal(dataset.validation.x.numpy(), raw["x"][7000:])
    assert np.array_equal(dataset.validation.y.numpy(), raw["y"][7000:])
    assert np.array_equal(dataset.test.x.numpy(), raw["x_test"])


def test_matches_make_dataset_directly():
    from mnist1d.data import get_dataset_args, make_dataset

    spec = DataSpec(num_samples=500)
    args = get_dataset_args()
    args.num_samples = 500
    direct = make_dataset(args)
    ours = data.load_arrays(spec)
    assert np.allclose(ours["x"], direct["x"].astype(np.float32))
    assert np.array_equal(ours["y"], direct["y"])


def test_cache_is_reused_and_keyed_by_every_argument(tmp_path, monkeypatch):
    spec = DataSpec(num_samples=400, validation_size=50)
    first = data.load(spec, tmp_path)
    assert data.cache_path(spec, tmp_path).exists()

    def refuse(_args):
        raise AssertionError("regenerated although a cached file exists")

    monkeypatch.setattr(data, "_generate", refuse)
    second = data.load(spec, tmp_path)
    assert torch.equal(first.train.x, second.train.x)

    changed = DataSpec(num_samples=400, validation_size=50, seed=7)
    assert data.cache_path(changed, tmp_path) != data.cache_path(spec, tmp_path)
    with pytest.raises(AssertionError, match="regenerated"):
        data.load(changed, tmp_path)


def test_global_rng_state_is_unchanged(tmp_path):
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    data.load(DataSpec(num_samples=300, validation_size=50), tmp_path)  # generates: make_dataset reseeds globals
    after = (random.getstate(), np.random.get_state()[1], torch.get_rng_state())
    assert before[0] == after[0]
    assert np.array_equal(before[1], after[1])
    assert torch.equal(before[2], after[2])


def test_validation_size_must_fit(tmp_path):
    with pytest.raises(ValueError, match="validation_size"):
        data.load(DataSpec(num_samples=300, validation_size=10_000), tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong arrays"])
def test_a_corrupt_cache_file_is_generated_again(tmp_path, damage):
    spec = DataSpec(num_samples=400, validation_size=50)
    first = data.load(spec, tmp_path)
    path = data.cache_path(spec, tmp_path)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00\xffnot an npz" * 100)
    else:
        np.savez(path, x=np.zeros(3))
    again = data.load(spec, tmp_path)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    assert path.read_bytes() == raw  # the cache file is whole again
