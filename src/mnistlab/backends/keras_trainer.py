"""Train and test with Keras 3 (TensorFlow by default): the same run as lightning_trainer.py.

Keras is imported inside `fit`, after backend.keras_backend has set KERAS_BACKEND, so importing
this module loads neither Keras nor TensorFlow.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from omegaconf import DictConfig

from mnistlab.backends import RunContext, steps_per_epoch
from mnistlab.backends.keras_env import import_keras
from mnistlab.data import Splits
from mnistlab.errors import ConfigError, NonFiniteLossError
from mnistlab.outputs import EpochRecorder, FitResult

# trainer.precision (Lightning's names) -> Keras dtype policy
PRECISION_POLICIES = {"32-true": "float32", "32": "float32", "bf16-mixed": "mixed_bfloat16",
                      "16-mixed": "mixed_float16"}
GPU_ACCELERATORS = ("gpu", "cuda", "mps")


def as_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) -> float32 (N, H, W, 1) in [0, 1]: Lightning's x.float() / 255."""
    return np.ascontiguousarray(x, dtype=np.float32)[..., None] / np.float32(255)


def callbacks(keras: ModuleType, recorder: EpochRecorder, scheduled: bool) -> list[Any]:
    """The two callbacks that every run has, built once keras is imported."""

    class EpochRecordCallback(keras.callbacks.Callback):
        """Hands each finished epoch (training and validation) to the shared recorder, and with
        a schedule each step's lr (the schedule at optimizer.iterations, before the step).

        This is also the W&B integration: the recorder logs each row to the run's W&B run. One
        writer for both backends keeps metrics.csv and the W&B metric names identical; wandb's
        own Keras callbacks would import TensorFlow-specific code and log other metric names.
        """

        def __init__(self) -> None:
            super().__init__()
            self.started = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if scheduled:
                lr = self.model.optimizer.learning_rate
                recorder.log_step_lr(float(keras.ops.convert_to_numpy(lr)))

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            # called after the epoch's validation, so the time includes it (as in Lightning)
            logs = logs or {}
            recorder.log_epoch(
                epoch=epoch + 1,
                train_loss=logs["loss"], train_acc=logs["acc"],
                val_loss=logs["val_loss"], val_acc=logs["val_acc"],
                lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                epoch_seconds=time.perf_counter() - self.started,
            )

    class NonFiniteLossCallback(keras.callbacks.Callback):
        """Stops a diverged run at the first bad batch, with the message Lightning gives."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            # logs["loss"] is the epoch's running mean: non-finite from the first bad batch on
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"training loss became {loss} at epoch {self.epoch + 1}, batch {batch}; "
                    "the run diverged, try a smaller optimizer.lr"
                )

    return [EpochRecordCallback(), NonFiniteLossCallback()]


def configure(keras: ModuleType, t: DictConfig) -> None:
    """Seeds, determinism and devices, before any model or data is built."""
    keras.utils.set_random_seed(t.seed)  # Python, NumPy, TensorFlow (and torch) generators
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if t.deterministic:
            tf.config.experimental.enable_op_determinism()
        gpus = tf.config.list_physical_devices("GPU")
        if t.accelerator == "cpu" and gpus:
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError as e:  # TensorFlow already initialised its devices
                raise ConfigError(f"trainer.accelerator=cpu: cannot hide the GPUs now ({e})") from e
        if t.accelerator in GPU_ACCELERATORS and not gpus:
            raise ConfigError(f"trainer.accelerator={t.accelerator}, but TensorFlow sees no GPU; "
                              "use trainer.accelerator=auto or cpu")
    elif backend == "torch" and t.deterministic:
        import torch

        torch.use_deterministic_algorithms(True)


def fit(cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
    keras = import_keras(cfg.backend.keras_backend)
    from mnistlab.backends.keras_augment import AUGMENTATIONS
    from mnistlab.backends.keras_model import MODELS, count_params
    from mnistlab.backends.keras_optim import OPTIMIZERS
    from mnistlab.backends.keras_schedule import SCHEDULES

    t = cfg.trainer
    configure(keras, t)
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[str(t.precision)])
    try:  # layers take the policy when built; the global one goes back afterwards
        model = MODELS[cfg.model.name](cfg.model, data.spec.image_shape, data.spec.num_classes,
                                       cfg.regularization.weight,
                                       AUGMENTATIONS[cfg.aug.name](cfg.aug))
    finally:
        keras.config.set_dtype_policy(previous_policy)
    steps = steps_per_epoch(cfg, data)
    lr = SCHEDULES[cfg.scheduler.name](cfg.scheduler, cfg.optimizer.lr, steps,
                                       steps * t.max_epochs)
    model.compile(
        optimizer=OPTIMIZERS[cfg.optimizer.name](cfg.optimizer, lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    if t.progress_bar:
        model.summary()

    run_dir = Path(ctx.run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    best = str(run_dir / "checkpoints" / "best.keras")
    run_callbacks = [
        *callbacks(keras, ctx.recorder, scheduled=not isinstance(lr, float)),
        keras.callbacks.ModelCheckpoint(best, monitor="val_acc", mode="max", save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "last.keras")),
    ]
    if cfg.logger.name == "csv":  # where Lightning's CSVLogger writes: <run>/csv/metrics.csv
        (run_dir / "csv").mkdir(exist_ok=True)
        run_callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "csv" / "metrics.csv")))

    ebs = cfg.data.eval_batch_size
    verbose = 2 if t.progress_bar else 0  # one line per epoch: readable in a log file
    model.fit(
        as_images(data.x_train), data.y_train, batch_size=cfg.data.batch_size,
        epochs=t.max_epochs, shuffle=True, validation_data=(as_images(data.x_val), data.y_val),
        validation_batch_size=ebs, callbacks=run_callbacks, verbose=verbose,
    )
    model.load_weights(best)  # test with the best validation accuracy's weights, as Lightning
    test = model.evaluate(as_images(data.x_test), data.y_test, batch_size=ebs, verbose=verbose,
                          return_dict=True)
    return FitResult(params=count_params(model), test_loss=float(test["loss"]),
                     test_acc=float(test["acc"]))
