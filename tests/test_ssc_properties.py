"""Property tests of the SSC term (hypothesis): invariances, bounds, stacking, finiteness."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sscbench.saliency import NORM_EPS
from sscbench_plugins.ssc import ssc_penalty

settings.register_profile("sscbench", max_examples=60, deadline=None)
settings.load_profile("sscbench")


@st.composite
def batches(draw, min_norm: float = 1e-2, d: int | None = None, b: int | None = None):
    """Random saliency maps [B, D] (float64) with labels in 0..3, each map of norm >= min_norm."""
    d = d if d is not None else draw(st.integers(4, 16))
    b = b if b is not None else draw(st.integers(2, 12))
    values = draw(st.lists(st.floats(-10, 10, allow_nan=False), min_size=b * d, max_size=b * d))
    maps = torch.tensor(values, dtype=torch.float64).view(b, d)
    # replace near-zero maps so that the 1e-8 in the normalisation is negligible
    small = maps.norm(dim=-1) < min_norm
    maps[small] = torch.linspace(1.0, 2.0, d, dtype=torch.float64)
    labels = torch.tensor(draw(st.lists(st.integers(0, 3), min_size=b, max_size=b)))
    return maps, labels


def value(maps, labels) -> float:
    return float(ssc_penalty(maps, labels))


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 + 1e-7 * abs(b)


@given(batches(), st.data())
def test_invariant_under_circular_shift_of_one_map(batch, data):
    maps, labels = batch
    i = data.draw(st.integers(0, len(labels) - 1))
    k = data.draw(st.integers(-20, 20))
    shifted = maps.clone()
    shifted[i] = torch.roll(maps[i], k)
    assert close(value(shifted, labels), value(maps, labels))


@given(batches(), st.data())
def test_invariant_under_scaling_one_map_sign_included(batch, data):
    maps, labels = batch
    i = data.draw(st.integers(0, len(labels) - 1))
    factor = data.draw(st.floats(1e-3, 1e3)) * data.draw(st.sampled_from([-1.0, 1.0]))
    scaled = maps.clone()
    scaled[i] = maps[i] * factor
    # Invariant up to the 1e-8 added to each spectrum's norm: a spectrum of norm n moves by about
    # eps / n relative, so a map scaled down to a small norm may move the value by a few eps / n.
    norms = torch.linalg.vector_norm(torch.fft.rfft(torch.cat([maps, scaled]), dim=-1).abs(), dim=-1)
    smallest = float(norms[norms > 0].min()) if bool((norms > 0).any()) else 1.0
    assert abs(value(scaled, labels) - value(maps, labels)) <= 1e-6 + 4 * NORM_EPS / smallest


@given(batches())
def test_invariant_under_circular_time_reversal(batch):
    maps, labels = batch
    reversed_ = torch.roll(torch.flip(maps, [-1]), 1, -1)  # g'[n] = g[-n mod D]
    assert close(value(reversed_, labels), value(maps, labels))


@given(batches(), st.randoms(use_true_random=False))
def test_invariant_under_permuting_the_batch_with_its_labels(batch, rnd):
    maps, labels = batch
    perm = list(range(len(labels)))
    rnd.shuffle(perm)
    assert close(value(maps[perm], labels[perm]), value(maps, labels))


@given(batches(), st.permutations(list(range(4))))
def test_invariant_under_relabelling_classes(batch, bijection):
    maps, labels = batch
    relabelled = torch.tensor(bijection)[labels]
    assert close(value(maps, relabelled), value(maps, labels))


@given(batches(), st.data())
def test_a_new_class_seen_once_changes_nothing(batch, data):
    maps, labels = batch
    extra = torch.tensor(data.draw(st.lists(st.floats(-5, 5), min_size=maps.shape[1],
                                            max_size=maps.shape[1])), dtype=torch.float64)
    at = data.draw(st.integers(0, len(labels)))
    more_maps = torch.cat([maps[:at], extra[None], maps[at:]])
    more_labels = torch.cat([labels[:at], torch.tensor([9]), labels[at:]])
    assert close(value(more_maps, more_labels), value(maps, labels))


@given(batches())
def test_non_negative_and_below_the_bound(batch):
    maps, labels = batch
    v = value(maps, labels)
    counts = torch.bincount(labels)
    kept = counts[counts >= 2]
    n_freq = maps.shape[1] // 2 + 1
    assert v >= 0
    if len(kept) == 0:
        assert v == 0
    else:
        n = int(kept.max())
        assert v <= (n / (n - 1)) / n_freq + 1e-12
        # tighter: magnitude spectra are non-negative, so the summed variance is at most 1
        assert v <= 1 / n_freq + 1e-12


@given(st.integers(4, 16), st.integers(1, 4), st.data())
def test_zero_when_each_class_holds_shifts_and_rescalings_of_one_map(d, n_classes, data):
    maps, labels = [], []
    for c in range(n_classes):
        base = torch.tensor(data.draw(st.lists(st.floats(-5, 5), min_size=d, max_size=d)),
                            dtype=torch.float64)
        if base.norm() < 1e-2:
            base = torch.arange(d, dtype=torch.float64) + 1.0
        for _ in range(data.draw(st.integers(1, 4))):
            shift = data.draw(st.integers(0, d - 1))
            scale = data.draw(st.floats(0.1, 10)) * data.draw(st.sampled_from([-1.0, 1.0]))
            maps.append(scale * torch.roll(base, shift))
            labels.append(c)
    assert abs(value(torch.stack(maps), torch.tensor(labels))) <= 1e-12


@given(st.integers(4, 16), st.integers(2, 12), st.data())
def test_a_stack_at_once_equals_its_members_separately(d, b, data):
    stack = data.draw(st.lists(batches(d=d, b=b), min_size=2, max_size=4))
    maps = torch.stack([m for m, _ in stack])
    labels = torch.stack([y for _, y in stack])
    together = ssc_penalty(maps, labels)
    assert together.shape == (len(stack),)
    for k, (m, y) in enumerate(stack):
        assert close(float(together[k]), value(m, y))


@given(batches(min_norm=0.0), st.sampled_from([0.0, 1e-30, 1e-8, 1.0, 1e8, 1e30]),
       st.sampled_from([torch.float32, torch.float64]))
def test_value_and_gradient_are_finite(batch, magnitude, dtype):
    maps, labels = batch
    maps = (maps * magnitude).to(dtype).requires_grad_(True)
    v = ssc_penalty(maps, labels)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(maps.grad).all()


def test_finite_in_degenerate_batches():
    cases = [
        (torch.zeros(6, 40), torch.tensor([0, 0, 1, 1, 2, 2])),  # all-zero maps
        (torch.randn(4, 40), torch.tensor([0, 1, 2, 3])),  # no class has two samples
        (torch.randn(5, 40), torch.tensor([0, 0, 1, 2, 3])),  # single-sample classes
    ]
    for maps, labels in cases:
        maps.requires_grad_(True)
        v = ssc_penalty(maps, labels)
        v.backward()
        assert torch.isfinite(v) and torch.isfinite(maps.grad).all()
    assert float(ssc_penalty(cases[1][0].detach(), cases[1][1])) == 0.0


def test_matches_the_protocol_written_class_by_class():
    gen = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 32, 40, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 10, (3, 32), generator=gen)
    ours = ssc_penalty(maps, labels)
    for k in range(3):
        spec = torch.fft.rfft(maps[k]).abs()
        spec = spec / (spec.norm(dim=-1, keepdim=True) + 1e-8)
        per = [spec[labels[k] == c].var(0).mean() for c in range(10) if (labels[k] == c).sum() >= 2]
        assert np.isclose(float(ours[k]), float(torch.stack(per).mean()), rtol=1e-12)
