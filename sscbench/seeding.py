"""Per-concern random streams derived from recorded seeds.

What it is: the single place where a member's seed becomes the seed of one
concern (batch order, plugin randomness), so that streams are independent and
nothing depends on global RNG state. Initialisation uses the member's seed
itself (``torch.manual_seed(seed)`` semantics, see ``sscbench.model``).

Two kinds of stream:
- ``stream_seed``: one 62-bit seed for a ``torch.Generator`` (numpy's
  ``SeedSequence``), for draws made once per member per epoch (batch order).
- ``keyed_normal``: standard normal draws for a whole stack in one pass of
  tensor operations, for draws made every step (plugin noise), so that no
  per-step work loops over members. It is SplitMix64 (Steele, Lea & Flood,
  "Fast splittable pseudorandom number generators", OOPSLA 2014), counter-based:
  member s's i-th number is ``mix64(key_s + (i + 1) * GAMMA)``, where ``key_s``
  absorbs the member's seed, the stream and the counter (the step) through
  ``mix64``. Integer arithmetic wraps modulo 2^64 (tested against Python's
  exact integers), so the draws are the same on every machine and device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

STREAM_BATCHES = 1
STREAM_PLUGIN = 2

_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def stream_seed(seed: int, stream: int, *extra: int) -> int:
    """A 62-bit seed for one concern of one member, independent across (seed, stream, extra)."""
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, stream, *extra]
    hi, lo = np.random.SeedSequence(words).generate_state(2)
    return (int(hi) >> 1) << 31 ^ int(lo)


def _as_int64(word: int) -> int:
    """A 64-bit pattern as the signed value torch's int64 holds."""
    word &= (1 << 64) - 1
    return word - (1 << 64) if word >= 1 << 63 else word


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 patterns (torch's ``>>`` is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser, a bijection of 64-bit patterns, elementwise on int64."""
    z = (z ^ _shift_right(z, 30)) * _as_int64(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _as_int64(_MIX2)
    return z ^ _shift_right(z, 31)


def keyed_bits(seeds: torch.Tensor, stream: int, counter: int, count: int) -> torch.Tensor:
    """``count`` 64-bit patterns per seed, [S, count] int64; row s depends only on seeds[s]."""
    key = mix64(seeds.to(torch.int64).cpu())
    key = mix64(key ^ _as_int64(stream))
    key = mix64(key ^ _as_int64(counter))
    steps = torch.arange(1, count + 1, dtype=torch.int64) * _as_int64(_GAMMA)
    return mix64(key.unsqueeze(1) + steps)


def keyed_normal(seeds: torch.Tensor, stream: int, counter: int, shape: Sequence[int]) -> torch.Tensor:
    """Standard normal draws [S, *shape] float64, on the CPU; row s depends only on (seeds[s], stream, counter).

    Each draw is the inverse normal CDF of a uniform in (0, 1) built from the
    top 53 bits of one pattern.
    """
    count = int(np.prod(shape, dtype=np.int64))
    bits = keyed_bits(seeds, stream, counter, count)
    uniform = (_shift_right(bits, 11).to(torch.float64) + 0.5) * 2.0 ** -53
    return torch.special.ndtri(uniform).view(int(seeds.shape[0]), *shape)
