"""Random streams derived from (seed, epoch, ...): an epoch's shuffling, augmentation and dropout
do not depend on how the process got to that epoch, so a resumed run draws what an uninterrupted
one would have drawn, with no random state to save."""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed for the stream named by `keys` (e.g. epoch, generator index) of run `seed`."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order in which epoch `epoch` (0-based) visits the n training samples."""
    return np.random.default_rng(derive_seed(seed, epoch, 0)).permutation(n)
