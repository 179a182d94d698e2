"""The model registry of the Keras side: the same networks and numbers as lightning/model.py.

Import this only after `env.import_keras` has chosen the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np
from omegaconf import DictConfig

from mnistlab.registry import Registry

# (model config, image (height, width), classes, L2 weight, preprocessing layers) -> a model
ModelBuilder = Callable[[DictConfig, tuple[int, int], int, float, Sequence[keras.layers.Layer]],
                        keras.Model]
MODELS: Registry[ModelBuilder] = Registry("model")


@MODELS.register("cnn")
def build_cnn(model: DictConfig, image_shape: tuple[int, int], num_classes: int,
              l2_weight: float = 0.0,
              preprocessing: Sequence[keras.layers.Layer] = ()) -> keras.Sequential:
    """Conv-MaxPool-ReLU per entry of `channels` -> Flatten -> Dropout -> Dense-ReLU -> Dense
    (pooling before the ReLU: the same function and gradients as the study's Conv-ReLU-MaxPool,
    with a quarter of the ReLU's work; lightning/model.py says why).

    Input: float images in [0, 1], (N, H, W, 1) channels_last; output: logits, like the torch
    network. `preprocessing` layers (augmentation, active only when training) go first. With
    l2_weight > 0 every conv and dense kernel, not bias, gets keras.regularizers.L2(l2_weight):
    weight * sum(w^2) added to the loss, which is what lightning/model.l2_penalty computes.
    Initialisation: Keras' defaults (Glorot uniform kernels, zero biases), as the torch model's.
    """
    def reg() -> keras.regularizers.Regularizer | None:
        return keras.regularizers.L2(l2_weight) if l2_weight > 0 else None

    layers: list[keras.layers.Layer] = [keras.Input((*image_shape, 1)), *preprocessing]
    for ch in model.channels:
        layers += [
            keras.layers.Conv2D(ch, model.kernel_size, padding="valid",
                                data_format="channels_last", kernel_regularizer=reg()),
            keras.layers.MaxPooling2D(2, data_format="channels_last"),
            keras.layers.ReLU(),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(model.dropout),
        keras.layers.Dense(model.dense_units, activation="relu", kernel_regularizer=reg()),
        # float32 logits also under a mixed-precision policy, for a stable softmax cross-entropy
        keras.layers.Dense(num_classes, kernel_regularizer=reg(), dtype="float32"),
    ]
    return keras.Sequential(layers, name="cnn")


def count_params(model: keras.Model) -> int:
    """Trainable parameters (the augmentation layers' seed state is not one)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def l2_penalty(model: keras.Model) -> float:
    """The regularization term Keras adds to the loss: the sum of model.losses."""
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses))
