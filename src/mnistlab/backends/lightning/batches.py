"""Batches sliced from tensors that already sit on the training device.

A DataLoader would collate one sample at a time in Python; MNIST fits in device memory, so each
epoch is one index permutation and a slice per batch. The permutation of epoch e is
`seeds.epoch_permutation(seed, e)`, the one the Keras backend uses: both see the same batches,
and a resumed run the same as an uninterrupted one.

Training hands Lightning `BatchGroups`: a few consecutive batches per loop iteration, each its
own optimizer step in the module's training_step. It is Keras' `steps_per_execution` for
Lightning: the loop's per-iteration work (fetching, batch hooks, progress and logger
bookkeeping, bf16's autocast region; 0.2-0.4 ms a batch at batch 50 here, several times its cost
alone because each step's activations have just swept the CPU's caches) runs once for the group,
while the batches, their order and the optimizer steps stay exactly those of one batch per
iteration.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mnistlab.training.seeds import epoch_permutation


class TensorBatches:
    """An iterable of (images, labels) batches; with `shuffle`, in the order of the epoch last
    given to `set_epoch` (as torch's DistributedSampler). In a run of `world_size` processes,
    rank r takes every world_size-th sample of each batch from r on: the ranks' parts are
    disjoint and together make the batch a single process would train on."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device,
                 shuffle: bool = False, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        if self.shuffle:
            order = torch.from_numpy(epoch_permutation(self.seed, self.epoch, n))
        elif self.world_size > 1:
            order = torch.arange(n)
        else:  # one process, in order: plain slices, no gather
            for start in range(0, n, self.batch_size):
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]
            return
        order = order.to(self.x.device)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size][self.rank::self.world_size]
            yield self.x[idx], self.y[idx]


BATCHES_PER_GROUP = 10  # ~60-100 ms of training at batch 50: how late an interrupt is noticed


class BatchGroups:
    """`batches` in lists of up to `size` consecutive batches (the last of an epoch may be
    shorter), with its epoch and length passed through."""

    def __init__(self, batches: TensorBatches, size: int) -> None:
        self.batches, self.size = batches, size

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.batches) // self.size)

    def __iter__(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        group: list[tuple[torch.Tensor, torch.Tensor]] = []
        for batch in self.batches:
            group.append(batch)
            if len(group) == self.size:
                yield group
                group = []
        if group:
            yield group
