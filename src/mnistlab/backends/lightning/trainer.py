"""Train and test with PyTorch Lightning, resumable from the last epoch's checkpoint.

checkpoints/last.ckpt is written at the end of every epoch (weights, optimizer and schedule,
loops, the best-so-far tracking and the recorded epochs), atomically; the random streams of each
epoch come from (seed, epoch), so a resumed run trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, Logger

from mnistlab.atomic import write_atomically
from mnistlab.backends.lightning.batches import BATCHES_PER_GROUP, BatchGroups, TensorBatches
from mnistlab.backends.lightning.components import as_images, use_deterministic_algorithms
from mnistlab.backends.lightning.model import count_params
from mnistlab.backends.lightning.module import ClassifierModule
from mnistlab.backends.lightning.quiet import quiet_lightning
from mnistlab.data import Splits
from mnistlab.errors import ConfigError, unreadable_checkpoint
from mnistlab.training import interrupts, turns
from mnistlab.training.contract import (
    FitResult,
    Predictions,
    RunContext,
    float32_below,
    steps_per_epoch,
)
from mnistlab.training.recorder import EpochRecorder
from mnistlab.training.seeds import derive_seed
from mnistlab.training.threads import limit_blas, run_threads

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary name and renamed: a kill mid-write never leaves a
    truncated last.ckpt. (Lightning's own save goes through a temp file in the system temp dir,
    which is a copy, not a rename, when that is another file system.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_atomically(Path(path), buffer.getvalue())


class EpochRecordCallback(pl.Callback):
    """Per epoch: seeds its random streams, hands its metrics to the shared recorder (and with a
    schedule each step's lr, read before the step: the module steps the scheduler after it), and
    stops at the next group of batches after SIGINT/SIGTERM. Its state (the recorded epochs) is
    saved in the checkpoint."""

    def __init__(self, recorder: EpochRecorder, seed: int, on_start: Any) -> None:
        self.recorder, self.seed, self.on_start = recorder, seed, on_start
        self.started = self.ended = 0.0
        self.restored: list[dict[str, float]] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.restored is not None:
            self.recorder.restore(self.restored)
        self.on_start()

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        trainer.train_dataloader.set_epoch(epoch)  # BatchGroups: its shuffled order
        # augmentation and dropout: each rank's own stream
        torch.manual_seed(derive_seed(self.seed, epoch, 1, trainer.global_rank))
        self.started = turns.clock()  # time.perf_counter but under the bench

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: object, batch_idx: int) -> None:
        turns.wait_for_turn()  # under the bench only
        self.recorder.mark_first_batch()

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        # once per optimizer step: a training batch (the loop's batch is a group of them)
        if trainer.lr_scheduler_configs:
            self.recorder.log_step_lr(optimizer.param_groups[0]["lr"])

    def on_train_batch_end(self, *args: Any) -> None:
        interrupts.check()

    def on_validation_batch_end(self, *args: Any) -> None:
        interrupts.check()

    def on_test_batch_end(self, *args: Any) -> None:
        interrupts.check()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.ended = turns.clock()  # before the checkpoints are written, as in Keras

    def record_epoch(self, trainer: pl.Trainer) -> None:
        """Called by LastCheckpoint: after the module's on_train_epoch_end has logged the
        training metrics, which Lightning runs after the other callbacks' hooks."""
        m = trainer.callback_metrics
        self.recorder.log_epoch(
            epoch=trainer.current_epoch + 1,
            train_loss=m["train/loss"], train_acc=m["train/acc"],
            val_loss=m["val/loss"], val_acc=m["val/acc"],
            lr=trainer.optimizers[0].param_groups[0]["lr"],
            epoch_seconds=self.ended - self.started,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.recorder.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning also loads callback states when test() loads best.ckpt; only the resumed
        # fit's (applied in on_train_start) are the run's rows
        self.restored = state_dict["rows"]


class LastCheckpoint(Checkpoint):
    """At the end of every epoch: the epoch is recorded, last.ckpt written, then the epoch is
    published (metrics.csv, W&B).

    A `Checkpoint`, so Lightning runs it after the module's epoch-end hook (which logs the
    training metrics) and after ModelCheckpoint: last.ckpt then holds the recorded epoch and
    the best-so-far tracking that includes it."""

    def __init__(self, path: Path, record: EpochRecordCallback) -> None:
        self.path, self.record = path, record

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record.record_epoch(trainer)
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state, to resume
        self.record.recorder.publish()  # rank 0's; the other ranks' recorders write nothing


def _loggers(cfg: DictConfig, ctx: RunContext) -> list[Logger]:
    """The recorder logs metrics to W&B for both backends (one row per epoch, stepped by epoch);
    logger=csv adds Lightning's own CSV log."""
    if cfg.logger.name == "csv":
        return [CSVLogger(ctx.run_dir, name="csv", version="")]
    return []


def resume_path(last: Path) -> str | None:
    """last.ckpt to continue from, checked readable first so a broken one is one clear line."""
    if not last.exists():
        return None
    try:
        torch.load(last, map_location="cpu", weights_only=False)
    except Exception as e:
        raise unreadable_checkpoint(last, e) from None
    return str(last)


@contextlib.contextmanager
def torch_cuda_checks() -> Iterator[None]:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 when imported, so that checking for CUDA
    never initialises it before a fork (strategy=ddp_fork). But torch's Adam and AdamW check
    for an accelerator at every step, and with that variable each check loads NVML afresh:
    ~0.4 ms a step, a thirtieth of a batch-50 step on a CPU. mnistlab never forks a process
    that trains (DDP starts fresh interpreters), so its fit and test use torch's own check,
    which is cached."""
    saved = os.environ.pop(NVML_CHECK, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[NVML_CHECK] = saved


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    limit_blas(threads)
    with contextlib.suppress(RuntimeError):  # settable once per process, before any parallel op
        torch.set_num_interop_threads(threads)


def fit(cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
    with quiet_lightning():
        return _fit(cfg, data, ctx)


def _fit(cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
    t = cfg.trainer
    set_threads(run_threads(t))
    pl.seed_everything(t.seed, workers=True, verbose=False)
    folder = Path(ctx.run_dir) / "checkpoints"
    best = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/acc", mode="max",
                           save_on_train_epoch_end=True, auto_insert_metric_name=False)
    bs, ebs = cfg.data.batch_size, cfg.data.eval_batch_size
    # a Checkpoint callback runs last: last.ckpt holds the best-so-far and early-stop states
    record = EpochRecordCallback(ctx.recorder, t.seed, ctx.on_start)
    callbacks = [record, best, LastCheckpoint(folder / "last.ckpt", record)]
    if t.stop_at_val_acc is not None:  # stop once reached; patience never runs out first
        callbacks.insert(1, EarlyStopping(monitor="val/acc", mode="max", patience=t.max_epochs,
                                          stopping_threshold=float32_below(t.stop_at_val_acc)))
    trainer = pl.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes,
        precision=t.precision, deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar, enable_model_summary=t.progress_bar,
        logger=_loggers(cfg, ctx) or False, num_sanity_val_steps=0,
        default_root_dir=ctx.run_dir, plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
    )
    if t.deterministic:  # Lightning has set torch's deterministic mode; this drops its NaN fill
        use_deterministic_algorithms()
    device, world, rank = trainer.strategy.root_device, trainer.world_size, trainer.global_rank
    if bs % world:
        raise ConfigError(f"data.batch_size={bs} is not allowed with {world} processes; expected "
                          f"a multiple of {world} (the batch is split evenly between them)")
    shard = {"rank": rank, "world_size": world}
    # with several processes too: Lightning prepares DDP's gradient sync before every
    # manual_backward, not once per forward through DDP's wrapper (which calls training_step)
    train = BatchGroups(TensorBatches(data.x_train, data.y_train, bs, device, shuffle=True,
                                      seed=t.seed, **shard), BATCHES_PER_GROUP)
    val = TensorBatches(data.x_val, data.y_val, ebs, device, **shard)
    test = TensorBatches(data.x_test, data.y_test, ebs, device, **shard)
    module = ClassifierModule(cfg, data.spec, steps_per_epoch(cfg, data), BATCHES_PER_GROUP)
    ckpt = resume_path(folder / "last.ckpt") if ctx.resume else None
    with torch_cuda_checks():
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt,
                    weights_only=False)
        trainer.test(module, dataloaders=test, ckpt_path=best.best_model_path, verbose=False,
                     weights_only=False)  # our own checkpoint, with the recorded epochs
    m = trainer.callback_metrics
    return FitResult(params=count_params(module.net), test_loss=float(m["test/loss"]),
                     test_acc=float(m["test/acc"]),
                     test_predictions=predict(module, data, ebs, device) if rank == 0 else None)


@torch.no_grad()
def predict(module: ClassifierModule, data: Splits, batch_size: int,
            device: torch.device) -> Predictions:
    """Class and softmax probability of each test image, with the weights trainer.test used."""
    module.eval().to(device)
    x = torch.from_numpy(np.ascontiguousarray(data.x_test)).to(device)
    probs = torch.cat([module(as_images(batch)).softmax(dim=1)
                       for batch in x.split(batch_size)])
    confidence, labels = probs.max(dim=1)
    return Predictions(labels=labels.cpu().numpy(), confidence=confidence.cpu().numpy())
