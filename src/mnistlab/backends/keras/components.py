"""The Keras side's one builder of a run's parts from its config: the model (with the
augmentation layers in front and the L2 penalty on its kernels), compiled with its optimizer and
schedule, and its input: the training batches of a whole run and the evaluation batches, uint8
images scaled to floats batch by batch. The trainer and the bench's bare loop both build through
here.

Import this only after `env.import_keras` has chosen Keras' backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig

from mnistlab.backends.keras.augment import AUGMENTATIONS
from mnistlab.backends.keras.model import MODELS
from mnistlab.backends.keras.optim import OPTIMIZERS
from mnistlab.backends.keras.schedule import SCHEDULES
from mnistlab.data.catalog import DatasetSpec
from mnistlab.registry import Registry
from mnistlab.training.seeds import epoch_permutation

# trainer.precision (Lightning's names) -> Keras dtype policy
PRECISION_POLICIES = {"32-true": "float32", "32": "float32", "bf16-mixed": "mixed_bfloat16",
                      "16-mixed": "mixed_float16"}


def registries() -> dict[str, Registry[Any]]:
    """Config group -> its builders on this side (the parity tests hold them against torch's)."""
    return {"model": MODELS, "aug": AUGMENTATIONS, "optimizer": OPTIMIZERS,
            "scheduler": SCHEDULES}


def build_model(keras: Any, cfg: DictConfig, spec: DatasetSpec, steps_per_epoch: int) -> Any:
    """The model of a fresh run at trainer.precision, compiled with its optimizer and schedule."""
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[str(cfg.trainer.precision)])
    try:  # layers take the policy when built; the global one goes back afterwards
        model = MODELS[cfg.model.name](cfg.model, spec.input_shape, spec.num_classes,
                                       cfg.regularization.weight,
                                       AUGMENTATIONS[cfg.aug.name](cfg.aug))
    finally:
        keras.config.set_dtype_policy(previous_policy)
    lr = SCHEDULES[cfg.scheduler.name](cfg.scheduler, cfg.optimizer.lr, steps_per_epoch,
                                       steps_per_epoch * cfg.trainer.max_epochs)
    model.compile(
        optimizer=OPTIMIZERS[cfg.optimizer.name](cfg.optimizer, lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    # Keras builds the optimizer's variables inside the first trace of the train step when no
    # distribution strategy is set, and TensorFlow then traces the step a second time (a
    # function that creates variables is traced again without them): ~0.3 s more first epoch
    model.optimizer.build(model.trainable_variables)
    return model


def scaled(images: Any) -> Any:
    """uint8 (N, H, W, C) images, as every dataset is stored (Keras' channels-last), -> float32
    in [0, 1]: the one place the Keras side turns stored images into model input."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 255


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                     epochs: range) -> Any:
    """A tf.data.Dataset of every training batch of `epochs`, epoch after epoch, each epoch in
    its epoch_permutation order (the batches the Lightning backend trains on) and each batch as
    (scaled(x[idx]), y[idx]): the input of one `model.fit` for the whole run.

    One fit per epoch on that epoch's order, as a float array, copied the training images at
    every epoch (157 MB for MNIST) and rebuilt fit's input and validation pipelines. Here the
    uint8 images are one tensor, and only each batch is gathered and scaled, as Keras' own
    pipeline for arrays does it. tf.data feeds Keras on every backend; its batches never cross
    an epoch's end."""
    import tensorflow as tf

    orders = np.stack([epoch_permutation(seed, epoch, len(y)) for epoch in epochs])
    images, labels = tf.constant(x), tf.constant(y)

    def gather(idx: Any) -> tuple[Any, Any]:
        return scaled(tf.gather(images, idx)), tf.gather(labels, idx)

    per_epoch = -(-len(y) // batch_size)
    return one_ahead(
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(gather)
        # flat_map hides the length: stated, so that Keras shows it and tf.data checks it
        .apply(tf.data.experimental.assert_cardinality(len(epochs) * per_epoch)))


def evaluation_batches(x: np.ndarray, y: np.ndarray | None, batch_size: int) -> Any:
    """(scaled(x), y) in order, in batches of `batch_size` (with `y` None, the images alone):
    the input of validation, test and prediction, in place of the float copy of every image
    that Keras' own pipeline for arrays slices (see `one_ahead` for why)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y)).batch(batch_size)
    return one_ahead(data.map(lambda images, *labels: (scaled(images), *labels)))


def one_ahead(data: Any) -> Any:
    """`data` with its next batch made in tf.data's thread while the model runs, and without
    tf.data's autotuning: an iterator being destroyed waits for the autotuning thread. A run's
    one fit returned 4.0-4.4 s after its last callback in 4 of 10 two-epoch runs (0 of 8
    without autotuning; a 25-epoch job once waited 50 s there), and an epoch of one training
    batch and a validation pass took 0.51-1.30 s through Keras' own autotuned pipeline for
    arrays, 0.51-0.56 s through this one (float32, 10,000 images at 250, on the EPYC host).
    One gather a batch, one batch ahead, needs no tuning."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return data.prefetch(1).with_options(options)
