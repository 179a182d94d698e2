"""The LightningModule: the CNN, its loss with the L2 penalty, metrics and optimizer."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from mnistlab.backends.torch_augment import augment
from mnistlab.backends.torch_model import build_cnn, l2_penalty
from mnistlab.backends.torch_optim import KerasRMSprop
from mnistlab.errors import NonFiniteLossError


def build_optimizer(params, opt: DictConfig) -> torch.optim.Optimizer:
    """Every hyperparameter comes from the config, so both backends use the same numbers."""
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, opt.beta2), eps=opt.eps)
    if opt.name == "rmsprop":  # Keras' eps placement, not torch's: see torch_optim.py
        return KerasRMSprop(params, lr=opt.lr, rho=opt.rho, eps=opt.eps, momentum=opt.momentum)
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov)
    raise ValueError(f"unknown optimizer {opt.name}")


class CNNModule(pl.LightningModule):
    """Batches arrive as uint8 images on the device; scaling and augmentation happen here."""

    def __init__(self, cfg: DictConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = build_cnn(cfg.model)
        n = cfg.model.num_classes
        stages = ("train", "val", "test")  # ModuleDict keys must not shadow Module.train
        self.acc = torch.nn.ModuleDict({f"{s}_": MulticlassAccuracy(n, average="micro")
                                        for s in stages})
        self.loss = torch.nn.ModuleDict({f"{s}_": MeanMetric() for s in stages})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        x = x.unsqueeze(1).float().div_(255)
        if stage == "train":
            x = augment(x, self.cfg.aug)
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

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return build_optimizer(self.parameters(), self.cfg.optimizer)
