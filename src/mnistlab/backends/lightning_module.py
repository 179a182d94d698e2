"""The LightningModule: the network, its loss with the L2 penalty, metrics, optimizer, schedule.

Every choice is looked up in the torch-side registries (torch_model, torch_augment, torch_optim,
torch_schedule): this module routes nothing by name.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from mnistlab.backends.torch_augment import AUGMENTATIONS
from mnistlab.backends.torch_model import MODELS, l2_penalty
from mnistlab.backends.torch_optim import OPTIMIZERS
from mnistlab.backends.torch_schedule import SCHEDULES
from mnistlab.errors import NonFiniteLossError


class CNNModule(pl.LightningModule):
    """Batches arrive as uint8 images on the device; scaling and augmentation happen here."""

    def __init__(self, cfg: DictConfig, image_shape: tuple[int, int], num_classes: int,
                 steps_per_epoch: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        self.steps_per_epoch = steps_per_epoch
        self.net = MODELS[cfg.model.name](cfg.model, image_shape, num_classes)
        self.augment = AUGMENTATIONS[cfg.aug.name](cfg.aug)
        stages = ("train", "val", "test")  # ModuleDict keys must not shadow Module.train
        self.acc = torch.nn.ModuleDict({f"{s}_": MulticlassAccuracy(num_classes, average="micro")
                                        for s in stages})
        self.loss = torch.nn.ModuleDict({f"{s}_": MeanMetric() for s in stages})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        x = x.unsqueeze(1).float().div_(255)
        if stage == "train":
            x = self.augment(x)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        if self.cfg.regularization.weight > 0:
            loss = loss + l2_penalty(self.net, self.cfg.regularization.weight)
        self.loss[f"{stage}_"].update(loss.detach(), weight=len(y))
        self.acc[f"{stage}_"].update(logits.detach(), y)
        # logger=False: the epoch recorder is the one writer of metrics.csv and W&B metrics
        for name, metric in (("loss", self.loss[f"{stage}_"]), ("acc", self.acc[f"{stage}_"])):
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, logger=False,
                     prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "train")
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at epoch {self.current_epoch + 1}, "
                f"batch {batch_idx}; the run diverged, try a smaller optimizer.lr"
            )
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = OPTIMIZERS[self.cfg.optimizer.name](self.parameters(), self.cfg.optimizer)
        scheduler = SCHEDULES[self.cfg.scheduler.name](
            optimizer, self.cfg.scheduler, self.steps_per_epoch,
            self.steps_per_epoch * self.cfg.trainer.max_epochs)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
