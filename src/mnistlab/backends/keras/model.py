"""The model registry of the Keras side: the same networks and numbers as lightning/model.py.

Import this only after `env.import_keras` has chosen the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from omegaconf import DictConfig

from mnistlab.registry import Registry

# (model config, input (height, width, channels), classes, L2 weight, preprocessing layers) ->
# a model from (N, H, W, C) floats to logits
ModelBuilder = Callable[[DictConfig, tuple[int, int, int], int, float,
                         Sequence[keras.layers.Layer]], keras.Model]
MODELS: Registry[ModelBuilder] = Registry("model")


def regularizer(l2_weight: float) -> keras.regularizers.Regularizer | None:
    """weight * sum(w^2) of a kernel, added to the loss: lightning/model.l2_penalty's term."""
    return keras.regularizers.L2(l2_weight) if l2_weight > 0 else None


@MODELS.register("cnn")
def build_cnn(model: DictConfig, input_shape: tuple[int, int, int], num_classes: int,
              l2_weight: float = 0.0,
              preprocessing: Sequence[keras.layers.Layer] = ()) -> keras.Sequential:
    """Conv-MaxPool-ReLU per entry of `channels` -> Flatten -> Dropout -> Dense-ReLU -> Dense
    (pooling before the ReLU: the same function and gradients as the study's Conv-ReLU-MaxPool,
    with a quarter of the ReLU's work; lightning/model.py says why).

    Input: float images in [0, 1], (N, H, W, C) channels_last; output: logits, like the torch
    network. `preprocessing` layers (augmentation, active only when training) go first. With
    l2_weight > 0 every conv and dense kernel, not bias, gets keras.regularizers.L2(l2_weight):
    weight * sum(w^2) added to the loss, which is what lightning/model.l2_penalty computes.
    Initialisation: Keras' defaults (Glorot uniform kernels, zero biases), as the torch model's.
    padding="same" at stride 1 pads as torch's "same" does. With `batch_norm`, a block is
    Conv-MaxPool-BN-ReLU and its conv has no bias, as on torch.
    """
    layers: list[keras.layers.Layer] = [keras.Input(input_shape), *preprocessing]
    for ch in model.channels:
        layers += [
            keras.layers.Conv2D(ch, model.kernel_size, padding=model.padding,
                                data_format="channels_last", use_bias=not model.batch_norm,
                                kernel_regularizer=regularizer(l2_weight)),
            keras.layers.MaxPooling2D(2, data_format="channels_last"),
        ]
        if model.batch_norm:
            layers.append(batch_norm(model))
        layers.append(keras.layers.ReLU())
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dropout(model.dropout),
        keras.layers.Dense(model.dense_units, activation="relu",
                           kernel_regularizer=regularizer(l2_weight)),
        logits(num_classes, l2_weight),
    ]
    return keras.Sequential(layers, name="cnn")


def logits(num_classes: int, l2_weight: float, name: str | None = None) -> keras.layers.Dense:
    """float32 logits also under a mixed-precision policy, for a stable softmax cross-entropy."""
    return keras.layers.Dense(num_classes, kernel_regularizer=regularizer(l2_weight),
                              dtype="float32", name=name)


@MODELS.register("mlp")
def build_mlp(model: DictConfig, input_shape: tuple[int, int, int], num_classes: int,
              l2_weight: float = 0.0,
              preprocessing: Sequence[keras.layers.Layer] = ()) -> keras.Sequential:
    """Flatten -> Dense-ReLU-Dropout per entry of `hidden` -> Dense, as lightning/model.py's
    (which flattens (C, H, W) where this flattens (H, W, C))."""
    layers: list[keras.layers.Layer] = [keras.Input(input_shape), *preprocessing,
                                        keras.layers.Flatten()]
    for units in model.hidden:
        layers += [keras.layers.Dense(units, activation="relu",
                                      kernel_regularizer=regularizer(l2_weight)),
                   keras.layers.Dropout(model.dropout)]
    layers.append(logits(num_classes, l2_weight))
    return keras.Sequential(layers, name="mlp")


@keras.saving.register_keras_serializable(package="mnistlab")
class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization with torch's moving variance: updated from the unbiased batch variance
    (times n / (n - 1), n the values per channel), where Keras' uses the biased one. The batch
    itself is normalised with the biased variance on both, so without this only the inference
    after training would differ, by n / (n - 1): visible with small batches and small maps."""

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        if not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        if keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4:
            return self._fused(inputs)
        return self._generic(inputs)

    def _generic(self, inputs: Any) -> Any:
        """Training on any Keras backend, from Keras' own ops."""
        ops = keras.ops
        x = ops.cast(inputs, "float32")  # as Keras' BN: statistics in float32 under bf16 too
        mean, variance = ops.moments(x, axes=list(range(len(x.shape) - 1)))
        n = ops.cast(ops.size(x), "float32") / x.shape[-1]
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1 - m))
        self.moving_variance.assign(self.moving_variance * m
                                    + variance * (n / (n - 1)) * (1 - m))
        out = ops.batch_normalization(x, mean, variance, axis=-1, offset=self.beta,
                                      scale=self.gamma, epsilon=self.epsilon)
        return ops.cast(out, self.compute_dtype)

    def _fused(self, inputs: Any) -> Any:
        """The same on TensorFlow's fused kernel (oneDNN's on a CPU), which takes bf16 input
        with float32 statistics and updates the moving variance from the unbiased one itself.
        In experiment=fast's epoch (bf16, the EPYC host) BN took ~1.1 s through the generic ops
        above and ~0.4 s here (docs/speed.md, "The fast recipe")."""
        import tensorflow as tf

        out, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, self.gamma.value, self.beta.value, mean=self.moving_mean.value,
            variance=self.moving_variance.value, epsilon=self.epsilon, is_training=True,
            exponential_avg_factor=1 - self.momentum, data_format="NHWC")
        self.moving_mean.assign(mean)
        self.moving_variance.assign(variance)
        return out


def batch_norm(model: DictConfig, name: str | None = None) -> BatchNorm:
    """BN with torch's numbers: `bn_momentum` is torch's, so Keras' momentum is 1 - it."""
    return BatchNorm(momentum=1 - model.bn_momentum, epsilon=model.bn_eps, name=name)


@MODELS.register("resnet")
def build_resnet(model: DictConfig, input_shape: tuple[int, int, int], num_classes: int,
                 l2_weight: float = 0.0,
                 preprocessing: Sequence[keras.layers.Layer] = ()) -> keras.Model:
    """conv3x3-BN-ReLU stem -> `blocks` basic blocks per entry of `widths`, the first of each
    stage after the first with stride 2 -> global average pooling -> Dense, as
    lightning/model.py's, with the same layer names.

    A stride-2 3x3 conv pads explicitly, one zero on every side as torch's padding=1: Keras'
    "same" would pad 0 before and 1 after an even side, sampling other pixels. At stride 1
    "same" is symmetric.
    """
    def conv(x: Any, filters: int, size: int, stride: int, name: str) -> Any:
        if size == 3 and stride == 2:
            x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        return keras.layers.Conv2D(filters, size, stride, use_bias=False, name=name,
                                   padding="same" if stride == 1 else "valid",
                                   kernel_regularizer=regularizer(l2_weight))(x)

    def bn(x: Any, name: str) -> Any:
        return batch_norm(model, name)(x)

    inputs = keras.Input(input_shape)
    x = inputs
    for layer in preprocessing:
        x = layer(x)
    width = model.widths[0]
    x = keras.layers.ReLU()(bn(conv(x, width, 3, 1, "stem_conv"), "stem_bn"))
    for stage, out_ch in enumerate(model.widths, 1):
        for block in range(1, model.blocks + 1):
            name, stride = f"stage{stage}_block{block}", 2 if stage > 1 and block == 1 else 1
            out = keras.layers.ReLU()(bn(conv(x, out_ch, 3, stride, f"{name}_conv1"),
                                         f"{name}_bn1"))
            out = bn(conv(out, out_ch, 3, 1, f"{name}_conv2"), f"{name}_bn2")
            if stride != 1 or width != out_ch:
                x = bn(conv(x, out_ch, 1, stride, f"{name}_proj"), f"{name}_proj_bn")
            x = keras.layers.ReLU()(keras.layers.Add()([out, x]))
            width = out_ch
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, logits(num_classes, l2_weight, "logits")(x), name="resnet")


def count_params(model: keras.Model) -> int:
    """Trainable parameters (the augmentation layers' seed state is not one)."""
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def l2_penalty(model: keras.Model) -> float:
    """The regularization term Keras adds to the loss: the sum of model.losses."""
    return float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses))
