"""The bench's yardstick on this side (`mnistlab.bench.bare`): the recipe as a bare Keras fit,
built by `components` like the trainer's model, with nothing else: no checkpoints, recorder or
loggers."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from mnistlab.backends.keras.env import import_keras
from mnistlab.data import Splits
from mnistlab.errors import ConfigError
from mnistlab.training import turns
from mnistlab.training.contract import EVAL_PASSES, Timings, steps_per_epoch
from mnistlab.training.threads import run_threads


def loop(cfg: DictConfig, data: Splits) -> Timings:
    """One `model.fit` for all epochs, on the trainer's tf.data batches (every epoch in its
    shuffled order, components.training_batches), with its validation_data: what a Keras guide
    writes, with a callback that sets each epoch's SeedGenerators (the trainer's streams) and
    one that reads the clock."""
    if cfg.backend.keras_backend != "tensorflow":
        raise ConfigError("the bench's bare Keras loop runs on backend.keras_backend=tensorflow")
    keras = import_keras("tensorflow")
    import tensorflow as tf

    from mnistlab.backends.keras.components import (
        build_model,
        evaluation_batches,
        training_batches,
    )
    from mnistlab.backends.keras.trainer import epoch_seeding

    t, bs, ebs = cfg.trainer, cfg.data.batch_size, cfg.data.eval_batch_size
    threads = run_threads(t)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    if t.accelerator == "cpu":
        tf.config.set_visible_devices([], "GPU")
    keras.utils.set_random_seed(t.seed)
    steps = steps_per_epoch(cfg, data)
    model = build_model(keras, cfg, data.spec, steps)
    epoch_seconds, train_seconds = [], []

    class Clock(keras.callbacks.Callback):
        # turns.clock: time.perf_counter but under the bench, which also takes its turns here
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.begin = turns.clock()

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            turns.wait_for_turn()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.trained = turns.clock()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epoch_seconds.append(turns.clock() - self.begin)
            train_seconds.append(self.trained - self.begin)

    val = evaluation_batches(data.x_val, data.y_val, ebs)
    history = model.fit(training_batches(data.x_train, data.y_train, bs, t.seed,
                                         range(t.max_epochs)),
                        steps_per_epoch=steps, epochs=t.max_epochs,
                        validation_data=val, callbacks=[epoch_seeding(keras, t.seed), Clock()],
                        shuffle=False, verbose=0)
    passes = []
    for _ in range(EVAL_PASSES):
        started = time.perf_counter()
        val_loss, val_acc = model.evaluate(val, verbose=0)
        passes.append(time.perf_counter() - started)
    train = history.history
    return Timings(epoch_seconds, train_seconds, min(passes), val_loss, val_acc,
                   train["loss"][-1], train["acc"][-1])
