"""The bench's yardstick on this side (`mnistlab.bench.bare`): the recipe as a bare Keras fit,
built by `components` like the trainer's model, with nothing else: no checkpoints, recorder or
loggers."""

from __future__ import annotations

import time

from omegaconf import DictConfig

from mnistlab.backends.keras.env import import_keras
from mnistlab.data import Splits
from mnistlab.errors import ConfigError
from mnistlab.training.contract import EVAL_PASSES, Timings, steps_per_epoch
from mnistlab.training.seeds import epoch_permutation
from mnistlab.training.threads import run_threads


def loop(cfg: DictConfig, data: Splits) -> Timings:
    """`model.fit` on NumPy arrays, one call per epoch on that epoch's shuffled order (the
    batches mnistlab trains on; fit's own shuffle would gather every batch inside the epoch),
    with its validation_data: what Keras users write. A callback only reads the clock."""
    if cfg.backend.keras_backend != "tensorflow":
        raise ConfigError("the bench's bare Keras loop runs on backend.keras_backend=tensorflow")
    keras = import_keras("tensorflow")
    import tensorflow as tf

    from mnistlab.backends.keras.components import as_images, build_model
    from mnistlab.backends.keras.trainer import seed_epoch

    t, bs, ebs = cfg.trainer, cfg.data.batch_size, cfg.data.eval_batch_size
    threads = run_threads(t)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    if t.accelerator == "cpu":
        tf.config.set_visible_devices([], "GPU")
    keras.utils.set_random_seed(t.seed)
    model = build_model(keras, cfg, data.spec, steps_per_epoch(cfg, data))

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.begin = time.perf_counter()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.trained = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.end = time.perf_counter()

    clock = Clock()
    xv = as_images(data.x_val)
    epoch_seconds, train_seconds = [], []
    for epoch in range(t.max_epochs):
        seed_epoch(keras, model, t.seed, epoch)
        order = epoch_permutation(t.seed, epoch, len(data.y_train))
        history = model.fit(as_images(data.x_train[order]), data.y_train[order], batch_size=bs,
                            epochs=1, shuffle=False, validation_data=(xv, data.y_val),
                            validation_batch_size=ebs, callbacks=[clock], verbose=0)
        epoch_seconds.append(clock.end - clock.begin)
        train_seconds.append(clock.trained - clock.begin)
    passes = []
    for _ in range(EVAL_PASSES):
        started = time.perf_counter()
        val_loss, val_acc = model.evaluate(xv, data.y_val, batch_size=ebs, verbose=0)
        passes.append(time.perf_counter() - started)
    train = history.history
    return Timings(epoch_seconds, train_seconds, min(passes), val_loss, val_acc,
                   train["loss"][-1], train["acc"][-1])
