"""Per-concern random streams derived from recorded seeds.

What it is: the single place where a member's seed becomes the seed of one
concern (batch order, plugin randomness), so that streams are independent and
nothing depends on global RNG state. Initialisation uses the member's seed
itself (``torch.manual_seed(seed)`` semantics, see ``sscbench.model``).
"""

from __future__ import annotations

import numpy as np

STREAM_BATCHES = 1
STREAM_PLUGIN = 2


def stream_seed(seed: int, stream: int, *extra: int) -> int:
    """A 62-bit seed for one concern of one member, independent across (seed, stream, extra)."""
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF, stream, *extra]
    hi, lo = np.random.SeedSequence(words).generate_state(2)
    return (int(hi) >> 1) << 31 ^ int(lo)
