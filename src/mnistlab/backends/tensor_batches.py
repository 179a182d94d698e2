"""Batches sliced from tensors that already sit on the training device.

A DataLoader would collate one sample at a time in Python; MNIST fits in device memory, so each
epoch is one index permutation and a slice per batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


class TensorBatches:
    """An iterable of (images, labels) batches; reshuffled each pass when `shuffle` is set."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device,
                 shuffle: bool = False, seed: int = 0) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        order = (torch.randperm(n, generator=self.generator).to(self.x.device)
                 if self.shuffle else None)
        for start in range(0, n, self.batch_size):
            if order is None:
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            else:
                idx = order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]
