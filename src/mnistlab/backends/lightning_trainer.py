"""Train and test with PyTorch Lightning."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger

from mnistlab.backends import RunContext, steps_per_epoch
from mnistlab.backends.lightning_module import CNNModule
from mnistlab.backends.tensor_batches import TensorBatches
from mnistlab.backends.torch_model import count_params
from mnistlab.data import Splits
from mnistlab.outputs import EpochRecorder, FitResult


class EpochRecordCallback(pl.Callback):
    """Hands each finished epoch (training and validation) to the shared recorder, and with a
    schedule each step's lr (read before the step: Lightning steps the scheduler after it)."""

    def __init__(self, recorder: EpochRecorder) -> None:
        self.recorder = recorder
        self.started = 0.0

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: object, batch_idx: int) -> None:
        if trainer.lr_scheduler_configs:
            self.recorder.log_step_lr(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        self.recorder.log_epoch(
            epoch=trainer.current_epoch + 1,
            train_loss=m["train/loss"], train_acc=m["train/acc"],
            val_loss=m["val/loss"], val_acc=m["val/acc"],
            lr=trainer.optimizers[0].param_groups[0]["lr"],
            epoch_seconds=time.perf_counter() - self.started,
        )


def _loggers(cfg: DictConfig, ctx: RunContext) -> list[Logger]:
    if cfg.logger.name == "wandb":
        return [WandbLogger(experiment=ctx.wandb_run)]  # the run started by mnistlab.tracking
    if cfg.logger.name == "csv":
        return [CSVLogger(ctx.run_dir, name="csv", version="")]
    return []


def fit(cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
    t = cfg.trainer
    pl.seed_everything(t.seed, workers=True, verbose=False)
    checkpoints = ModelCheckpoint(
        dirpath=Path(ctx.run_dir) / "checkpoints", filename="best", monitor="val/acc",
        mode="max", save_last=True, auto_insert_metric_name=False,
    )
    loggers = _loggers(cfg, ctx)
    # the recorder logs the lr for both backends; Lightning's LearningRateMonitor would add a
    # second W&B row per epoch
    callbacks: list[pl.Callback] = [EpochRecordCallback(ctx.recorder), checkpoints]
    trainer = pl.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
        precision=t.precision, deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
        logger=loggers or False, callbacks=callbacks, num_sanity_val_steps=0,
        default_root_dir=ctx.run_dir,
    )
    device = trainer.strategy.root_device
    bs, ebs = cfg.data.batch_size, cfg.data.eval_batch_size
    train = TensorBatches(data.x_train, data.y_train, bs, device, shuffle=True, seed=t.seed)
    val = TensorBatches(data.x_val, data.y_val, ebs, device)
    test = TensorBatches(data.x_test, data.y_test, ebs, device)
    module = CNNModule(cfg, data.spec.image_shape, data.spec.num_classes,
                       steps_per_epoch(cfg, data))
    trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    trainer.test(module, dataloaders=test, ckpt_path="best", verbose=False)
    m = trainer.callback_metrics
    return FitResult(params=count_params(module.net), test_loss=float(m["test/loss"]),
                     test_acc=float(m["test/acc"]))
