"""Every random stream of a run comes from one derivation: (seed, stream, rank, epoch) -> an independent seed.

numpy's SeedSequence mixes the run's seed with the stream's key, so streams never collide (as `seed * K + epoch`
formulas do once epochs or ranks exceed K), and a resumed run draws what a straight run draws.
"""

from __future__ import annotations

import numpy as np

# init: the network's initial weights; epoch: torch's and python's global state during an epoch (drop path, MixUp);
# order: the training set's permutation (the same on every rank, which then takes its shard); augment: the per-image
# draws of the augmentation on each rank; sampler: an exploration's sampler at each draw (epoch = the draw's number);
# corrupt: a corrupted validation set (rank = the corruption, epoch = its severity; roadmap.data.corruptions)
STREAMS = ("init", "epoch", "order", "augment", "sampler", "corrupt")


def derive(seed: int, stream: str, *, rank: int = 0, epoch: int = 0) -> int:
    """The seed of `stream` for process `rank` in `epoch` of a run seeded `seed` (a non-negative 63-bit int)."""
    key = (STREAMS.index(stream), rank, epoch)
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0] >> np.uint64(1))
