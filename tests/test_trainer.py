"""The shared trainer: torch.optim.AdamW semantics, stack equivalence, divergence, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sscbench.contracts import registry
from sscbench.data import Split
from sscbench.engine.trainer import Member, epoch_order, split_evenly, stack_progress, train_stack, worker_count
from sscbench.spec import TrainSpec

WIDTHS = [40, 32, 32, 10]
SPEC = TrainSpec(batch_size=16)


@pytest.fixture(scope="module")
def small(dataset):
    # 20 steps of 16 in one epoch, the last batch partial (316 = 19 x 16 + 12).
    return Split(dataset.train.x[:316], dataset.train.y[:316])


def reference_ssc(x_grad: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """PROTOCOL.md's SSC term written as plainly as possible, class by class."""
    spectrum = torch.fft.rfft(x_grad, dim=-1).abs()
    spectrum = spectrum / (spectrum.norm(dim=-1, keepdim=True) + 1e-8)
    per_class = [spectrum[labels == c].var(0).mean() for c in labels.unique() if (labels == c).sum() >= 2]
    return torch.stack(per_class).mean() if per_class else spectrum.sum() * 0


def reference_run(split, seed, lr, wd, lambda_ssc, epochs=1):
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    net = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    for epoch in range(epochs):
        order = epoch_order([seed], epoch, len(split), torch.device("cpu"))[0]
        for lo in range(0, len(split), SPEC.batch_size):
            idx = order[lo:lo + SPEC.batch_size]
            x = split.x[idx].clone().requires_grad_(True)
            y = split.y[idx]
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            if lambda_ssc:
                (g,) = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), x, create_graph=True)
                loss = loss + lambda_ssc * reference_ssc(g, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [p.detach() for p in net.parameters()]


@pytest.mark.parametrize("plugin,lambda_ssc", [("baseline", 0.0), ("ssc", 0.5)])
def test_single_member_matches_torch_adamw_after_20_steps(small, plugin, lambda_ssc):
    params = {"lambda_ssc": lambda_ssc} if plugin == "ssc" else {}
    member = Member(seed=7, lr=3e-3, weight_decay=1e-2, params=params)
    hist = train_stack(small, WIDTHS, [member], registry.load(plugin), 1, SPEC)
    assert hist.steps == 20
    expected = reference_run(small, 7, 3e-3, 1e-2, lambda_ssc)
    for ours, theirs in zip(hist.model.member(0), expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_member_in_a_stack_follows_its_solo_trajectory(small):
    ssc = registry.load("ssc")
    members = [Member(s, lr, 1e-3, {"lambda_ssc": lam})
               for s, lr, lam in [(0, 1e-3, 0.1), (1, 5e-3, 1.0), (2, 2e-3, 0.0)]]
    stacked = train_stack(small, WIDTHS, members, ssc, 2, SPEC, {"val": small})
    for index, member in enumerate(members):
        alone = train_stack(small, WIDTHS, [member], ssc, 2, SPEC, {"val": small})
        for a, b in zip(stacked.model.member(index), alone.model.member(0), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(stacked.train_loss[index], alone.train_loss[0], rtol=1e-5)


def test_diverged_member_stops_and_leaves_the_others_alone(small):
    ssc = registry.load("ssc")
    good = [Member(0, 1e-3, 1e-3, {"lambda_ssc": 0.1}), Member(1, 2e-3, 1e-3, {"lambda_ssc": 0.1})]
    bad = Member(2, 1e10, 1.0, {"lambda_ssc": 0.1})  # decay factor 1 - 1e10 per step: overflows
    mixed = train_stack(small, WIDTHS, [good[0], bad, good[1]], ssc, 2, SPEC, {"val": small})
    clean = train_stack(small, WIDTHS, good, ssc, 2, SPEC, {"val": small})
    assert mixed.diverged_at == [None, 0, None]
    assert np.isnan(mixed.train_loss[1]).all() and np.isnan(mixed.accuracy["val"][1]).all()
    for mixed_index, clean_index in [(0, 0), (2, 1)]:
        np.testing.assert_allclose(mixed.train_loss[mixed_index], clean.train_loss[clean_index], rtol=1e-5)
        for a, b in zip(mixed.model.member(mixed_index), clean.model.member(clean_index), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # the diverged member stopped updating: one more epoch leaves its parameters as they were
    shorter = train_stack(small, WIDTHS, [good[0], bad, good[1]], ssc, 1, SPEC)
    for a, b in zip(mixed.model.member(1), shorter.model.member(1), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_same_spec_and_seeds_give_identical_numbers(small):
    ssc = registry.load("ssc")
    members = [Member(s, 2e-3, 1e-3, {"lambda_ssc": 0.3}) for s in (0, 1)]
    a = train_stack(small, WIDTHS, members, ssc, 2, SPEC, {"val": small})
    b = train_stack(small, WIDTHS, members, ssc, 2, SPEC, {"val": small})
    assert np.array_equal(a.train_loss, b.train_loss)
    assert np.array_equal(a.reg_term, b.reg_term)
    assert np.array_equal(a.accuracy["val"], b.accuracy["val"])
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_records_shapes_and_terms(small):
    members = [Member(0, 2e-3, 1e-3, {"lambda_ssc": 0.3}), Member(1, 2e-3, 1e-3, {"lambda_ssc": 0.0})]
    hist = train_stack(small, WIDTHS, members, registry.load("ssc"), 3, SPEC, {"val": small, "test": small})
    assert hist.train_loss.shape == (2, 3) and set(hist.accuracy) == {"val", "test"}
    assert (hist.reg_term[0] > 0).all() and (hist.reg_term[1] == 0).all()
    assert ((hist.accuracy["val"] >= 0) & (hist.accuracy["val"] <= 1)).all()


def test_cuda_request_without_cuda_is_an_error(small):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        train_stack(small, WIDTHS, [Member(0, 1e-3, 0.0)], registry.load("baseline"), 1,
                    TrainSpec(device="cuda"))


def test_a_stack_larger_than_memory_allows_is_split_without_changing_results(small):
    ssc = registry.load("ssc")
    members = [Member(s, 1e-3 * (s + 1), 1e-3, {"lambda_ssc": 0.1 * s}) for s in range(5)]
    seen: list[tuple[int, int, int]] = []
    one_worker = TrainSpec(batch_size=16, workers=1)
    whole = train_stack(small, WIDTHS, members, ssc, 2, one_worker, {"val": small})
    split = train_stack(small, WIDTHS, members, ssc, 2, one_worker, {"val": small},
                        on_epoch=lambda e, model, first: seen.append((e, first, model.size)), capacity=2)
    assert seen == [(0, 0, 2), (1, 0, 2), (0, 2, 2), (1, 2, 2), (0, 4, 1), (1, 4, 1)]
    assert split.model.size == 5 and split.train_loss.shape == (5, 2)
    np.testing.assert_allclose(split.accuracy["val"], whole.accuracy["val"], atol=1e-6)
    torch.testing.assert_close(split.model.flat, whole.model.flat, rtol=1e-4, atol=1e-5)


def test_stack_capacity_follows_free_memory(monkeypatch):
    from sscbench.engine import trainer

    per = trainer.bytes_per_member([40, 256, 256, 10], 128)
    monkeypatch.setattr(trainer, "free_memory_bytes", lambda device: 10 * per)
    assert trainer.stack_capacity([40, 256, 256, 10], 128, torch.device("cpu")) == 5
    monkeypatch.setattr(trainer, "free_memory_bytes", lambda device: 0)
    assert trainer.stack_capacity([40, 256, 256, 10], 128, torch.device("cpu")) == 1


@pytest.mark.parametrize("workers", [2, 3])
def test_sub_stacks_trained_at_once_give_the_same_results(small, workers):
    ssc = registry.load("ssc")
    members = [Member(s % 2, 1e-3 * (s + 1), 1e-3, {"lambda_ssc": 0.1 * s}) for s in range(5)]
    seen: list[tuple[int, int, int]] = []
    alone = train_stack(small, WIDTHS, members, ssc, 2, TrainSpec(batch_size=16, workers=1), {"val": small})
    threads = torch.get_num_threads()
    together = train_stack(small, WIDTHS, members, ssc, 2, TrainSpec(batch_size=16, workers=workers), {"val": small},
                           on_epoch=lambda e, model, first: seen.append((e, first, model.size)))
    assert torch.get_num_threads() == threads  # restored after the workers finish
    parts = split_evenly(5, workers)
    assert sorted(seen) == sorted((e, p.start, len(p)) for p in parts for e in range(2))
    assert together.model.size == 5 and together.diverged_at == alone.diverged_at
    np.testing.assert_allclose(together.accuracy["val"], alone.accuracy["val"], atol=1.5 / len(small))
    torch.testing.assert_close(together.model.flat, alone.model.flat, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(together.train_loss, alone.train_loss, rtol=1e-6)


def test_an_error_in_one_sub_stack_stops_the_others_and_is_raised(small):
    calls: list[int] = []

    def hook(epoch, model, first):
        calls.append(first)
        if first == 0:
            raise ValueError("boom in the first sub-stack")

    threads = torch.get_num_threads()
    with pytest.raises(ValueError, match="boom"):
        train_stack(small, WIDTHS, [Member(s, 1e-3, 0.0) for s in range(4)], registry.load("baseline"), 50,
                    TrainSpec(batch_size=16, workers=2), on_epoch=hook)
    assert torch.get_num_threads() == threads
    assert len(calls) < 10  # the other sub-stack stopped long before its 50 epochs


def test_worker_count_and_even_split():
    assert worker_count(TrainSpec(), 10) == 1
    assert worker_count(TrainSpec(workers=3), 10) == 3
    assert worker_count(TrainSpec(workers=8), 5) == 5
    assert split_evenly(5, 2) == [range(0, 3), range(3, 5)]
    assert split_evenly(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert split_evenly(2, 2) == [range(0, 1), range(1, 2)]


def test_progress_moves_with_every_sub_stack_and_each_epoch_adds_up_to_one(small):
    events: list[tuple[str, int, float]] = []
    progress = stack_progress(5, lambda epoch, share: events.append(("report", epoch, share)))

    def hook(epoch, model, first):
        events.append(("part", epoch, model.size))
        progress(epoch, model, first)

    # 5 members, at most 4 at a time (memory), each stack cut in two (workers): sub-stacks of 2, 2 and 1.
    train_stack(small, WIDTHS, [Member(s, 1e-3, 0.0) for s in range(5)], registry.load("baseline"), 2,
                TrainSpec(batch_size=16, workers=2), on_epoch=hook, capacity=4)
    reports = [(e, share) for kind, e, share in events if kind == "report"]
    parts = [(e, size) for kind, e, size in events if kind == "part"]
    assert reports == [(e, size / 5) for e, size in parts]  # one report per sub-stack epoch, its share
    for epoch in (0, 1):
        assert sum(share for e, share in reports if e == epoch) == pytest.approx(1.0)
    # progress moves before the last (consecutive) stack starts: 4 of the 6 reports come from the first
    assert [size for _, size in parts] == [2, 2, 2, 2, 1, 1]