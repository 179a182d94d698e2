"""Batches sliced from tensors that already sit on the training device.

A DataLoader would collate one sample at a time in Python; MNIST fits in device memory, so each
epoch is one index permutation and a slice per batch. The permutation of epoch e is
`seeds.epoch_permutation(seed, e)`, the one the Keras backend uses: both see the same batches,
and a resumed run the same as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mnistlab.seeds import epoch_permutation


class TensorBatches:
    """An iterable of (images, labels) batches; with `shuffle`, in the order of the epoch last
    given to `set_epoch` (as torch's DistributedSampler)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device,
                 shuffle: bool = False, seed: int = 0) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = (torch.from_numpy(epoch_permutation(self.seed, self.epoch, n)).to(self.x.device)
                 if self.shuffle else None)
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]
