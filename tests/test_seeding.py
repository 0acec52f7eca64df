"""The keyed generator behind BatchContext.randn: exact SplitMix64, normal draws, independence."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sscbench.seeding import STREAM_PLUGIN, keyed_bits, keyed_normal, mix64

MASK = (1 << 64) - 1


def reference_mix64(z: int) -> int:
    """SplitMix64's finaliser on Python's exact integers (Steele, Lea & Flood 2014)."""
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def reference_bits(seed: int, stream: int, counter: int, count: int) -> list[int]:
    key = reference_mix64(reference_mix64(reference_mix64(seed) ^ stream) ^ counter)
    return [reference_mix64(key + i * 0x9E3779B97F4A7C15) for i in range(1, count + 1)]


def unsigned(values: torch.Tensor) -> list[int]:
    return [v & MASK for v in values.tolist()]


def test_mix64_matches_the_published_splitmix64_sequence():
    # SplitMix64 seeded with 0: the first outputs as in the reference implementation (prng.di.unimi.it).
    state = torch.arange(1, 4, dtype=torch.int64) * (0x9E3779B97F4A7C15 - (1 << 64))
    assert unsigned(mix64(state)) == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


@settings(max_examples=50, deadline=None)
@given(seeds=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=4),
       counter=st.integers(0, 2**40), count=st.integers(1, 6))
def test_keyed_bits_equal_exact_integer_arithmetic(seeds, counter, count):
    bits = keyed_bits(torch.tensor(seeds), STREAM_PLUGIN, counter, count)
    for row, seed in zip(bits, seeds, strict=True):
        assert unsigned(row) == reference_bits(seed, STREAM_PLUGIN, counter, count)


def test_keyed_normal_is_standard_normal_and_uncorrelated():
    draws = keyed_normal(torch.arange(4), STREAM_PLUGIN, 7, (50_000,))
    for row in draws.numpy():
        assert stats.kstest(row, "norm").pvalue > 1e-3
        assert abs(np.corrcoef(row[:-1], row[1:])[0, 1]) < 0.02  # successive draws
    corr = np.corrcoef(draws.numpy())
    assert np.abs(corr[~np.eye(4, dtype=bool)]).max() < 0.02  # across members
    assert torch.isfinite(draws).all()


def test_keyed_normal_rows_depend_only_on_their_own_seed_stream_and_counter():
    stack = keyed_normal(torch.tensor([3, 11, 5]), STREAM_PLUGIN, 2, (4, 6))
    assert stack.shape == (3, 4, 6) and stack.dtype == torch.float64
    alone = keyed_normal(torch.tensor([11]), STREAM_PLUGIN, 2, (4, 6))
    assert torch.equal(stack[1], alone[0])
    assert not torch.equal(stack[1], keyed_normal(torch.tensor([11]), STREAM_PLUGIN, 3, (4, 6))[0])
    assert not torch.equal(stack[1], keyed_normal(torch.tensor([11]), STREAM_PLUGIN + 1, 2, (4, 6))[0])
    assert not torch.equal(stack[0], stack[2])


def test_keyed_normal_shape_is_a_prefix_of_one_stream():
    long = keyed_normal(torch.tensor([1, 2]), STREAM_PLUGIN, 0, (10,))
    short = keyed_normal(torch.tensor([1, 2]), STREAM_PLUGIN, 0, (2, 3))
    assert torch.equal(long[:, :6].reshape(2, 2, 3), short)
    assert keyed_normal(torch.tensor([1, 2]), STREAM_PLUGIN, 0, (0, 3)).shape == (2, 0, 3)


@pytest.mark.parametrize("seed", [0, 2**63 - 1])
def test_extreme_seeds_give_finite_draws(seed):
    assert torch.isfinite(keyed_normal(torch.tensor([seed]), STREAM_PLUGIN, 2**40, (1000,))).all()
