"""The augmentation registry of the Keras side: layers at the front of the model, active only
in training (fit), the identity in evaluate/predict; random parameters drawn per sample, on
whole batches.

The same semantics as lightning/augment.py:
- flip: each image flipped left-right with probability horizontal_p and up-down with vertical_p,
  independently (keras.layers.RandomFlip always uses p=0.5, hence RandomFlipP);
- shift_rotate: rotation uniform in +-rotation_degrees about the image centre, then a shift
  uniform in +-shift_x of the width and +-shift_y of the height; zero fill, bilinear, in ONE
  resampling of the composed transform, as torch does (RandomShiftRotate). Chaining Keras'
  RandomRotation and RandomTranslation would resample twice and blur more, which measurably
  slowed learning: not the same recipe.

Import this only after `env.import_keras` has chosen the backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops
from omegaconf import DictConfig

from mnistlab.registry import Registry

# aug config -> the layers to put in front of the network (none: no layers)
AUGMENTATIONS: Registry[Callable[[DictConfig], list[keras.layers.Layer]]] = Registry("aug")


@keras.saving.register_keras_serializable(package="mnistlab")
class RandomFlipP(keras.layers.Layer):
    """Flip each image (N, H, W, C) horizontally with probability horizontal_p, and vertically
    with probability vertical_p, independently per sample; the identity unless training."""

    def __init__(self, horizontal_p: float, vertical_p: float, seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.horizontal_p = float(horizontal_p)
        self.vertical_p = float(vertical_p)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = False):
        if not training:
            return images
        n = ops.shape(images)[0]
        if self.horizontal_p > 0:
            h = keras.random.uniform((n, 1, 1, 1), seed=self.seed_generator) < self.horizontal_p
            images = ops.where(h, ops.flip(images, axis=2), images)
        if self.vertical_p > 0:
            v = keras.random.uniform((n, 1, 1, 1), seed=self.seed_generator) < self.vertical_p
            images = ops.where(v, ops.flip(images, axis=1), images)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "horizontal_p": self.horizontal_p,
                "vertical_p": self.vertical_p, "seed": self.seed}


@keras.saving.register_keras_serializable(package="mnistlab")
class RandomShiftRotate(keras.layers.Layer):
    """Rotate each image (N, H, W, C) by U(-degrees, degrees) about its centre, then shift it by
    U(-shift_x, shift_x) of the width and U(-shift_y, shift_y) of the height; zero fill, bilinear,
    one resampling; the identity unless training."""

    def __init__(self, rotation_degrees: float, shift_x: float, shift_y: float,
                 seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rotation_degrees = float(rotation_degrees)
        self.shift_x = float(shift_x)
        self.shift_y = float(shift_y)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = False):
        if not training:
            return images
        n, h, w = ops.shape(images)[0], images.shape[1], images.shape[2]
        u = keras.random.uniform((n, 3), minval=-1.0, maxval=1.0, seed=self.seed_generator)
        angle = u[:, 0] * (math.pi * self.rotation_degrees / 180.0)
        tx, ty = u[:, 1] * (self.shift_x * w), u[:, 2] * (self.shift_y * h)
        cos, sin = ops.cos(angle), ops.sin(angle)
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        # affine_transform maps each output pixel to its input pixel: the inverse of
        # rotate-about-the-centre-then-shift, as rows [a0 a1 a2 b0 b1 b2 c0 c1]
        zero = ops.zeros_like(cos)
        transform = ops.stack([
            cos, sin, cx - cos * (cx + tx) - sin * (cy + ty),
            -sin, cos, cy + sin * (cx + tx) - cos * (cy + ty),
            zero, zero,
        ], axis=1)
        return ops.image.affine_transform(images, transform, interpolation="bilinear",
                                          fill_mode="constant", fill_value=0.0,
                                          data_format="channels_last")

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rotation_degrees": self.rotation_degrees,
                "shift_x": self.shift_x, "shift_y": self.shift_y, "seed": self.seed}


@AUGMENTATIONS.register("none")
def no_augmentation(aug: DictConfig) -> list[keras.layers.Layer]:
    return []


@AUGMENTATIONS.register("flip")
@AUGMENTATIONS.register("hflip")  # conf/aug/hflip.yaml: flip with vertical_p 0
def flip_augmentation(aug: DictConfig) -> list[keras.layers.Layer]:
    return [RandomFlipP(aug.horizontal_p, aug.vertical_p, name="flip", dtype="float32")]


@AUGMENTATIONS.register("shift_rotate")
def shift_rotate_augmentation(aug: DictConfig) -> list[keras.layers.Layer]:
    # float32 under a mixed policy too, as torch's (bf16 would round the sampling coordinates)
    return [RandomShiftRotate(aug.rotation_degrees, aug.shift_x, aug.shift_y,
                              name="shift_rotate", dtype="float32")]
