"""Train and test with Keras 3 (TensorFlow by default): the same run as the Lightning
backend's trainer.

Keras is imported inside `fit`, after backend.keras_backend has set KERAS_BACKEND, so importing
this module loads neither Keras nor TensorFlow.

`fit` runs one `model.fit` for the run, whose random streams come from (seed, epoch) at every
epoch: its shuffled order (the one the Lightning backend uses; components.training_batches), and
the state of every SeedGenerator (augmentation, dropout), set as the epoch begins. At the end of
every epoch the model with its optimizer goes to checkpoints/last.keras and the recorded epochs
to last.json, both written atomically; a resumed run loads them and trains exactly as an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from omegaconf import DictConfig

from mnistlab.atomic import write_atomically
from mnistlab.backends.keras.env import import_keras
from mnistlab.data import Splits
from mnistlab.errors import ConfigError, NonFiniteLossError, disk_full, unreadable_checkpoint
from mnistlab.training import interrupts, turns
from mnistlab.training.contract import (
    FitResult,
    Predictions,
    RunContext,
    reached_target,
    steps_per_epoch,
)
from mnistlab.training.recorder import EpochRecorder
from mnistlab.training.seeds import derive_seed
from mnistlab.training.threads import limit_blas, run_threads

log = logging.getLogger(__name__)

GPU_ACCELERATORS = ("gpu", "cuda", "mps")


def callbacks(keras: ModuleType, t: DictConfig, recorder: EpochRecorder, schedule: Any | None,
              checkpoints: Checkpoints) -> list[Any]:
    """The callbacks of every run, built once keras is imported (`t`: cfg.trainer). At every
    batch: the checks for a diverged loss and an interrupt. As an epoch begins: seed its random
    streams. At its end, in this order: record the epoch, save best (if it improved) and last,
    publish the epoch, then its progress line and the stop at trainer.stop_at_val_acc.
    `schedule`: the optimizer's LearningRateSchedule, None for a constant lr."""

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
            self.first_step = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = turns.clock()  # time.perf_counter but under the bench
            self.first_step = self.steps_done()

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            turns.wait_for_turn()  # under the bench only
            recorder.mark_first_batch()

        def steps_done(self) -> int:
            return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

        def log_step_lrs(self) -> None:
            """The schedule at each of the epoch's steps, in one vectorised call: reading
            optimizer.learning_rate at every step runs the schedule's ops eagerly, ~0.8 ms a
            step (a tenth of a batch-256 step)."""
            steps = np.arange(self.first_step, self.steps_done())
            lrs = keras.ops.convert_to_numpy(keras.ops.vectorized_map(schedule, steps))
            for lr in lrs:
                recorder.log_step_lr(lr)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            # called after the epoch's validation, so the time includes it (as in Lightning)
            if schedule is not None:
                self.log_step_lrs()
            logs = logs or {}
            recorder.log_epoch(
                epoch=epoch + 1,
                train_loss=logs["loss"], train_acc=logs["acc"],
                val_loss=logs["val_loss"], val_acc=logs["val_acc"],
                lr=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                epoch_seconds=turns.clock() - self.started,
            )

    class BatchChecks(keras.callbacks.Callback):
        """Stops a diverged run at the first bad batch, with the message Lightning gives, and
        an interrupted one (SIGINT, SIGTERM) at the next batch."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            interrupts.check()
            # logs["loss"] is the epoch's running mean: non-finite from the first bad batch on
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                raise NonFiniteLossError.at(loss, self.epoch + 1, batch)

        def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
            interrupts.check()

    class SaveAndPublish(keras.callbacks.Callback):
        """best.keras when val_acc improved, then last.json and last.keras, then metrics.csv and
        W&B. Keras' ModelCheckpoint writes in place, so a kill mid-save would leave a broken
        file; these are written aside and renamed."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            checkpoints.save(self.model, recorder.rows)
            recorder.publish()

    class EndOfEpoch(keras.callbacks.Callback):
        """The epoch's line in the log (with the progress bar on: readable in a log file), and
        the end of training once val_acc reaches trainer.stop_at_val_acc, as Lightning's
        EarlyStopping(stopping_threshold=...) ends it (Keras' EarlyStopping has no threshold)."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            row = recorder.rows[-1]
            if t.progress_bar:
                log.info("epoch %d/%d: loss %.4f, acc %.4f, val_loss %.4f, val_acc %.4f",
                         epoch + 1, t.max_epochs, row["train_loss"], row["train_acc"],
                         row["val_loss"], row["val_acc"])
            if reached_target(row["val_acc"], t.stop_at_val_acc):
                self.model.stop_training = True

    # BatchChecks first: the test takes it alone (run_callbacks[:1])
    return [BatchChecks(), epoch_seeding(keras, t.seed), EpochRecordCallback(), SaveAndPublish(),
            EndOfEpoch()]


class Checkpoints:
    """checkpoints/best.keras, last.keras and last.json (the recorded epochs) of one run."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.best, self.last, self.state = (folder / "best.keras", folder / "last.keras",
                                            folder / "last.json")

    def save(self, model: Any, rows: list[dict[str, float]]) -> None:
        if rows[-1]["val_acc"] > max((r["val_acc"] for r in rows[:-1]), default=-math.inf):
            _save_model(model, self.best)
        # last.json first: a kill between the two leaves a model one epoch behind its rows,
        # and `restore` keeps only the rows of the epochs the model has trained
        write_atomically(self.state, json.dumps({"rows": rows}, indent=1))
        _save_model(model, self.last)

    def restore(self, keras: ModuleType, steps: int) -> tuple[Any, list[dict[str, float]]] | None:
        """The model (compiled, with its optimizer state) and the rows of its epochs; None when
        no epoch had finished; DataError naming the file that cannot be read."""
        if not self.last.exists():
            return None
        for path in (self.last, self.state):
            try:
                if path == self.last:
                    model = keras.models.load_model(path)
                else:
                    rows = json.loads(path.read_text())["rows"]
            except Exception as e:
                raise unreadable_checkpoint(path, e) from None
        epochs = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) // steps
        return model, rows[:epochs]


def _save_model(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")  # Keras insists on the .keras suffix
    try:
        model.save(tmp)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = disk_full(path, e)
        if full is not None:
            raise full from None
        raise
    os.replace(tmp, path)


def epoch_seeding(keras: ModuleType, seed: int) -> Any:
    """The callback that starts every SeedGenerator of the model (augmentation, dropout) from
    (seed, epoch, its index) as each epoch begins, before its first batch: the trainer's streams,
    which the bench's bare loop shares. Layers keep them in `_seed_generators`: Keras has no
    public accessor."""

    class EpochSeeding(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            generators = [g for layer in self.model.layers for g in layer._seed_generators]
            for i, generator in enumerate(generators):
                state = np.array([derive_seed(seed, epoch, 2 + i), 0])
                generator.state.assign(keras.ops.convert_to_tensor(state,
                                                                   dtype=generator.state.dtype))

    return EpochSeeding()


def configure(keras: ModuleType, t: DictConfig) -> Any:
    """Seeds, determinism and devices, before any model or data is built; returns the
    distribution strategy under which to build the model (a no-op scope for one device)."""
    backend = keras.backend.backend()
    replicas = t.devices if isinstance(t.devices, int) else 1
    if replicas > 1 and backend != "tensorflow":
        raise ConfigError(f"trainer.devices={replicas} needs backend.keras_backend=tensorflow "
                          f"(tf.distribute), not {backend}; or use backend=lightning")
    threads = run_threads(t)
    limit_blas(threads)
    if backend == "tensorflow":
        set_tf_threads(threads)
    strategy = mirrored_strategy(replicas, t.accelerator) if replicas > 1 else None
    keras.utils.set_random_seed(t.seed)  # Python, NumPy, TensorFlow (and torch) generators
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
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(True)
    return strategy if strategy is not None else contextlib.nullcontext()


def set_tf_threads(threads: int) -> None:
    """TensorFlow's op pools; they can be set only before its runtime starts."""
    import tensorflow as tf

    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # started earlier in this process (tests): keeps its first setting
        if threading.get_intra_op_parallelism_threads() not in (0, threads):
            log.warning("TensorFlow already runs with %d threads in this process, not %d",
                        threading.get_intra_op_parallelism_threads(), threads)


def mirrored_strategy(replicas: int, accelerator: str) -> Any:
    """tf.distribute.MirroredStrategy over `replicas` GPUs, or on a machine without GPUs over as
    many logical CPU devices (TensorFlow splits the host's CPU), each taking an equal part of
    every batch; the scope's `scope()` is where the model must be built."""
    import tensorflow as tf

    gpus = [] if accelerator == "cpu" else tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < replicas:
            raise ConfigError(f"trainer.devices={replicas}, but TensorFlow sees {len(gpus)} GPUs")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(replicas)]).scope()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)])
    except RuntimeError:  # TensorFlow has started: the split can no longer change
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise ConfigError(f"trainer.devices={replicas}: TensorFlow already runs in this "
                              "process with another number of CPU devices; start a fresh "
                              "process") from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)]).scope()


def fit(cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
    """Train and test; afterwards Keras' global state (its graphs, layer names, the model) is
    cleared, so that the jobs of a long sweep in one process do not pile it up."""
    keras = import_keras(cfg.backend.keras_backend)
    registered = custom_gradients(keras)
    try:
        return _fit(keras, cfg, data, ctx)
    finally:
        keras.backend.clear_session()
        drop_custom_gradients(keras, registered)


def custom_gradients(keras: ModuleType) -> set[str]:
    """The names in TensorFlow's gradient registry made by `tf.custom_gradient` so far."""
    if keras.backend.backend() != "tensorflow":
        return set()
    from tensorflow.python.framework import ops  # the registry has no public API

    return {name for name in ops._gradient_registry._registry if name.startswith("CustomGradient-")}


def drop_custom_gradients(keras: ModuleType, before: set[str]) -> None:
    """Forget the custom gradients this run's traces registered.

    Every trace of a train step under a tf.distribute strategy (Keras always has one) passes the
    gradients through ReplicaContext.all_reduce, a `tf.custom_gradient` that registers a new
    "CustomGradient-<n>" in TensorFlow's global gradient registry and never removes it; the
    closure keeps the step's whole FuncGraph alive (about 1,000 graph operations and 12 MB per
    Keras run; clear_session does not touch it: keras-team/keras#17458). Once the run's
    functions are cleared, nothing can ask for those gradients again.
    """
    if keras.backend.backend() != "tensorflow":
        return
    from tensorflow.python.framework import ops

    for name in custom_gradients(keras) - before:
        del ops._gradient_registry._registry[name]


def _fit(keras: ModuleType, cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
    # registers the custom layers and schedules that a checkpoint may hold
    from mnistlab.backends.keras.components import (
        build_model,
        evaluation_batches,
        training_batches,
    )
    from mnistlab.backends.keras.model import count_params

    t = cfg.trainer
    scope = configure(keras, t)
    steps = steps_per_epoch(cfg, data)
    run_dir = Path(ctx.run_dir)
    checkpoints = Checkpoints(run_dir / "checkpoints")
    with scope:
        restored = checkpoints.restore(keras, steps) if ctx.resume else None
        if restored is None:
            model = build_model(keras, cfg, data.spec, steps)
        else:
            model, rows = restored
            ctx.recorder.restore(rows)
    if t.progress_bar:
        model.summary()
    schedule = model.optimizer._learning_rate  # no public accessor
    if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        schedule = None  # a constant lr
    run_callbacks = callbacks(keras, t, ctx.recorder, schedule, checkpoints)
    if cfg.logger.name == "csv":  # where Lightning's CSVLogger writes: <run>/csv/metrics.csv
        (run_dir / "csv").mkdir(exist_ok=True)
        run_callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "csv" / "metrics.csv"),
                                                       append=True))

    ebs = cfg.data.eval_batch_size
    epochs = range(len(ctx.recorder.rows), t.max_epochs)
    ctx.on_start()
    if epochs:  # a resumed run whose epochs all finished goes on to its test
        model.fit(training_batches(data.x_train, data.y_train, cfg.data.batch_size, t.seed,
                                   epochs),
                  steps_per_epoch=steps, initial_epoch=epochs.start, epochs=epochs.stop,
                  validation_data=evaluation_batches(data.x_val, data.y_val, ebs),
                  callbacks=run_callbacks, shuffle=False, verbose=0)
    model.load_weights(checkpoints.best)  # test the best validation accuracy's weights
    test_batches = evaluation_batches(data.x_test, data.y_test, ebs)
    test = model.evaluate(test_batches, verbose=0, callbacks=run_callbacks[:1], return_dict=True)
    logits = model.predict(test_batches, verbose=0)  # predict reads the images, not the labels
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    predictions = Predictions(labels=probs.argmax(axis=1), confidence=probs.max(axis=1))
    return FitResult(params=count_params(model), test_loss=float(test["loss"]),
                     test_acc=float(test["acc"]), test_predictions=predictions)
