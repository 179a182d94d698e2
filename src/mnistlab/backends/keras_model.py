"""The study's CNN and its optimizers in Keras 3: the same network and numbers as torch_model.py.

Import this only after `keras_env.import_keras` has chosen the backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from omegaconf import DictConfig

IMAGE_SIZE = 28


def build_cnn(model: DictConfig, l2_weight: float = 0.0,
              preprocessing: Sequence[keras.layers.Layer] = ()) -> keras.Sequential:
    """Conv-ReLU-MaxPool per entry of `channels` -> Flatten -> Dropout -> Dense-ReLU -> Dense.

    Input: float images in [0, 1], (N, 28, 28, 1) channels_last; output: logits, like the torch
    network. `preprocessing` layers (augmentation, active only when training) go first. With
    l2_weight > 0 every conv and dense kernel, not bias, gets keras.regularizers.L2(l2_weight):
    weight * sum(w^2) added to the loss, which is what torch_model.l2_penalty computes.
    Initialisation: Keras' defaults (Glorot uniform kernels, zero biases), which torch_model uses.
    """
    def reg() -> keras.regularizers.Regularizer | None:
        return keras.regularizers.L2(l2_weight) if l2_weight > 0 else None

    layers: list[keras.layers.Layer] = [keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1)), *preprocessing]
    for ch in model.channels:
        layers += [
            keras.layers.Conv2D(ch, model.kernel_size, padding="valid", activation="relu",
                                data_format="channels_last", kernel_regularizer=reg()),
            keras.layers.MaxPooling2D(2, data_format="channels_last"),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(model.dropout),
        keras.layers.Dense(model.dense_units, activation="relu", kernel_regularizer=reg()),
        # float32 logits also under a mixed-precision policy, for a stable softmax cross-entropy
        keras.layers.Dense(model.num_classes, kernel_regularizer=reg(), dtype="float32"),
    ]
    return keras.Sequential(layers, name="cnn")


def build_optimizer(opt: DictConfig) -> keras.optimizers.Optimizer:
    """Every hyperparameter is mapped explicitly, the same numbers as the Lightning backend.

    Keras' other arguments stay off (no weight decay, clipping, EMA, amsgrad, centered RMSprop).
    RMSprop's rule (eps inside the square root) is matched on the torch side (torch_optim.py).
    One small difference remains in Adam: Keras adds epsilon to sqrt(v) before the bias
    correction ("epsilon hat"), torch after; torch's eps equals Keras' eps / sqrt(1 - beta2^t):
    32x at the first step, the same after a few thousand steps, negligible beside sqrt(v).
    """
    if opt.name == "adam":
        return keras.optimizers.Adam(learning_rate=opt.lr, beta_1=opt.beta1, beta_2=opt.beta2,
                                     epsilon=opt.eps, amsgrad=False)
    if opt.name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=opt.lr, rho=opt.rho, epsilon=opt.eps,
                                        momentum=opt.momentum, centered=False)
    if opt.name == "sgd":
        # Keras' velocity is torch's momentum buffer times -lr: the same steps at a constant lr
        return keras.optimizers.SGD(learning_rate=opt.lr, momentum=opt.momentum,
                                    nesterov=opt.nesterov)
    raise ValueError(f"unknown optimizer {opt.name}")


def count_params(model: keras.Model) -> int:
    """Trainable parameters (the augmentation layers' seed state is not one)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def l2_penalty(model: keras.Model) -> float:
    """The regularization term Keras adds to the loss: the sum of model.losses."""
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses))
