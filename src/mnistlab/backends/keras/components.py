"""The Keras side's one builder of a run's parts from its config: the model (with the
augmentation layers in front and the L2 penalty on its kernels), compiled with its optimizer and
schedule, uint8 images as the model's float input, and the training batches of a whole run. The
trainer and the bench's bare loop both build through here.

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


def as_images(x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C), as every dataset is stored (Keras' channels-last), -> float32 in
    [0, 1], in one float copy."""
    images = x.astype(np.float32)
    images /= np.float32(255)
    return images


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                     epochs: range) -> Any:
    """A tf.data.Dataset of every training batch of `epochs`, epoch after epoch, each epoch in
    its epoch_permutation order (the batches the Lightning backend trains on) and each batch as
    (as_images(x[idx]), y[idx]): the input of one `model.fit` for the whole run.

    One fit per epoch on that epoch's order, as a float array, copied the training images at
    every epoch (157 MB for MNIST) and rebuilt fit's input and validation pipelines. Here the
    uint8 images are one tensor, and only each batch is gathered and scaled, as Keras' own
    pipeline for arrays does it (prefetched, in tf.data's thread). tf.data feeds Keras on every
    backend; its batches never cross an epoch's end."""
    import tensorflow as tf

    orders = np.stack([epoch_permutation(seed, epoch, len(y)) for epoch in epochs])
    images, labels = tf.constant(x), tf.constant(y)

    def gather(idx: Any) -> tuple[Any, Any]:
        return tf.cast(tf.gather(images, idx), tf.float32) / 255, tf.gather(labels, idx)

    per_epoch = -(-len(y) // batch_size)
    return (tf.data.Dataset.from_tensor_slices(orders)
            .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
            .map(gather)
            # flat_map hides the length: stated, so that Keras shows it and tf.data checks it
            .apply(tf.data.experimental.assert_cardinality(len(epochs) * per_epoch))
            .prefetch(tf.data.AUTOTUNE))
