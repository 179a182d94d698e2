"""The LightningModule: the network, its loss with the L2 penalty, metrics, optimizer, schedule.

Every part is built by `components` from the config: this module routes nothing by name. The
step is written out (Lightning's manual optimization): the same forward, backward, optimizer
step and per-step schedule as the automatic one, without its closure's hooks, once for each
batch of the group of batches a training_step gets (batches.BatchGroups).
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchmetrics import MeanMetric

from mnistlab.backends.lightning.components import (
    as_images,
    build_augment,
    build_network,
    build_optimizer,
)
from mnistlab.backends.lightning.model import l2_penalty
from mnistlab.data.catalog import DatasetSpec
from mnistlab.errors import NonFiniteLossError


class ClassifierModule(pl.LightningModule):
    """Batches arrive as uint8 images on the device; scaling and augmentation happen here."""

    def __init__(self, cfg: DictConfig, spec: DatasetSpec, steps_per_epoch: int = 1,
                 batches_per_group: int = 1) -> None:
        super().__init__()
        # the step is written out in training_step: Lightning's automatic optimization wraps it
        # in a closure whose hooks cost ~0.13 ms a step (measured with a 2-channel network)
        self.automatic_optimization = False
        self.cfg = cfg
        self.steps_per_epoch = steps_per_epoch
        self.batches_per_group = batches_per_group  # training batches per training_step
        self.l2_weight = float(cfg.regularization.weight)  # a DictConfig lookup costs ~10 us a step
        self.net = build_network(cfg, spec)
        # the model summary runs it once (eval mode, no grad) for its sizes and FLOPs column
        self.example_input_array = torch.zeros(1, spec.channels, *spec.image_shape)
        self.augment = build_augment(cfg)
        # per stage: running sums of loss x samples, correct predictions and samples (three
        # in-place adds a step, where torchmetrics' updates cost ~0.2 ms, their input checks: a
        # fiftieth of a step at batch 50); at the epoch's end each mean goes to a MeanMetric,
        # which Lightning computes across processes and resets. ModuleDict keys must not
        # shadow Module.train, hence the underscore.
        stages = ("train", "val", "test")
        for stage in stages:
            self.register_buffer(f"{stage}_totals", torch.zeros(3), persistent=False)
        self.loss = torch.nn.ModuleDict({f"{s}_": MeanMetric() for s in stages})
        self.acc = torch.nn.ModuleDict({f"{s}_": MeanMetric() for s in stages})

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook it calls, 34 times a training step;
        # nn.Module.__setattr__ first checks the value against parameters, buffers and
        # submodules (1.3 us a call, against 0.2 us), which a hook's name never is
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        x = as_images(x)
        training = stage == "train"
        if training:
            x = self.augment(x)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if training and self.l2_weight > 0:  # evaluation adds it once, in _log_epoch
            loss = loss + l2_penalty(self.net, self.l2_weight)
        totals = getattr(self, f"{stage}_totals")
        totals[0].add_(loss.detach(), alpha=len(y))  # in place on views: no copy back
        totals[1].add_((logits.argmax(dim=1) == y).sum())
        totals[2].add_(len(y))
        return loss

    def _log_epoch(self, stage: str) -> None:
        """The stage's mean loss and accuracy over the epoch, logged once at its end (a
        `self.log` in every step costs Lightning ~0.4 ms). logger=False: the epoch recorder is
        the one writer of metrics.csv and W&B metrics. An evaluation's loss includes the L2
        penalty as training's does; its weights are fixed, so it is added once, here."""
        loss_sum, correct, samples = getattr(self, f"{stage}_totals")
        loss = loss_sum / samples
        if stage != "train" and self.l2_weight > 0:
            loss = loss + l2_penalty(self.net, self.l2_weight)
        for name, mean in (("loss", loss), ("acc", correct / samples)):
            metric = getattr(self, name)[f"{stage}_"]
            metric.update(mean, weight=samples)
            self.log(f"{stage}/{name}", metric, logger=False, prog_bar=True)

    def _start_epoch(self, stage: str) -> None:
        getattr(self, f"{stage}_totals").zero_()

    def on_train_epoch_start(self) -> None:
        self._start_epoch("train")

    def on_validation_epoch_start(self) -> None:
        self._start_epoch("val")

    def on_test_epoch_start(self) -> None:
        self._start_epoch("test")

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def training_step(self, group: list[tuple[torch.Tensor, torch.Tensor]],
                      group_idx: int) -> torch.Tensor:
        """For each batch of the group (batches.BatchGroups): forward, loss, backward, optimizer
        step, then the schedule's per-step update, the order of Lightning's automatic
        optimization, whose hooks mnistlab does not use. Returns the last batch's loss."""
        optimizer = self.optimizers()
        schedule = self.lr_schedulers()
        first = group_idx * self.batches_per_group
        for batch_idx, batch in enumerate(group, start=first):
            loss = self._step(batch, "train")
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError.at(value, self.current_epoch + 1, batch_idx)
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            optimizer.step()
            if schedule is not None:
                schedule.step()
        return loss

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """TensorBatches slices batches on the training device already: Lightning's walk of the
        batch to move it (~20 us a step) would find nothing to do."""
        return batch

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer, scheduler = build_optimizer(self.cfg, self.parameters(), self.steps_per_epoch)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}  # stepped in training_step
