"""The torch side's one builder of a run's parts from its config: the network, the augmentation,
the optimizer with its schedule, and uint8 images as the network's float input. The
LightningModule and the bench's bare loop both build through here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from mnistlab.backends.lightning.augment import AUGMENTATIONS, Augment
from mnistlab.backends.lightning.model import MODELS
from mnistlab.backends.lightning.optim import OPTIMIZERS
from mnistlab.backends.lightning.schedule import SCHEDULES
from mnistlab.data.catalog import DatasetSpec
from mnistlab.registry import Registry


def registries() -> dict[str, Registry[Any]]:
    """Config group -> its builders on this side (the parity tests hold them against Keras')."""
    return {"model": MODELS, "aug": AUGMENTATIONS, "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULES}


def build_network(cfg: DictConfig, spec: DatasetSpec) -> nn.Module:
    """The model in channels-last memory format, which oneDNN's (and cuDNN's) convolutions use
    natively; in torch's default, every convolution reorders its input and output."""
    net = MODELS[cfg.model.name](cfg.model, spec.input_shape, spec.num_classes)
    return net.to(memory_format=torch.channels_last)


def build_augment(cfg: DictConfig) -> Augment:
    return AUGMENTATIONS[cfg.aug.name](cfg.aug)


def build_optimizer(cfg: DictConfig, params: Iterable,
                    steps_per_epoch: int) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
    """The optimizer and its per-step schedule (None: a constant lr) over the whole run."""
    optimizer = OPTIMIZERS[cfg.optimizer.name](params, cfg.optimizer)
    schedule = SCHEDULES[cfg.scheduler.name](optimizer, cfg.scheduler, steps_per_epoch,
                                             steps_per_epoch * cfg.trainer.max_epochs)
    return optimizer, schedule


def use_deterministic_algorithms() -> None:
    """trainer.deterministic=true: torch's deterministic kernels (what Lightning's
    deterministic=True sets), without filling every new tensor with NaN first. That fill only
    makes a kernel that reads memory it never wrote give the same wrong answer every time; no
    kernel here does, and on a CPU the fill is a further write of every activation and gradient
    (~3 % of a batch-50 step)."""
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def as_images(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C), as every dataset is stored, -> float (N, C, H, W) in [0, 1] on x's
    device: torch's channels-first shape, whose strides stay channels-last (the network's
    memory format), so the conversion is one copy and no reorder. The one place the torch
    side turns stored images into network input."""
    return x.permute(0, 3, 1, 2).float().div_(255)
