"""Augmentation as Keras layers at the front of the model: active only in training (fit), the
identity in evaluate/predict; random parameters drawn per sample, on whole batches.

The same semantics as torch_augment.py:
- flip: each image flipped left-right with probability horizontal_p and up-down with vertical_p,
  independently (keras.layers.RandomFlip always uses p=0.5, hence RandomFlipP);
- shift_rotate: rotation uniform in +-rotation_degrees about the image centre, then a shift
  uniform in +-shift_x of the width and +-shift_y of the height; zero fill, bilinear.
  RandomRotation's factor is a fraction of a full turn (degrees / 360); RandomTranslation's
  factors are fractions of the height and width. Keras resamples twice (torch once, with the
  composed transform), which blurs a little more; the distributions are the same.

Import this only after `keras_env.import_keras` has chosen the backend.
"""

from __future__ import annotations

import keras
from keras import ops
from omegaconf import DictConfig


@keras.saving.register_keras_serializable(package="mnistlab")
class RandomFlipP(keras.layers.Layer):
    """Flip each image (N, H, W, C) horizontally with probability horizontal_p, and vertically
    with probability vertical_p, independently per sample; the identity unless training."""

    def __init__(self, horizontal_p: float = 0.5, vertical_p: float = 0.5, seed: int | None = None,
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


def augmentation_layers(aug: DictConfig) -> list[keras.layers.Layer]:
    """The `aug` config group as layers to put in front of the CNN (none: no layers)."""
    if aug.name == "flip":
        return [RandomFlipP(aug.horizontal_p, aug.vertical_p, name="flip")]
    if aug.name == "shift_rotate":
        layers: list[keras.layers.Layer] = []
        if aug.rotation_degrees > 0:
            layers.append(keras.layers.RandomRotation(
                aug.rotation_degrees / 360.0, fill_mode="constant", fill_value=0.0,
                interpolation="bilinear", name="rotate"))
        if aug.shift_x > 0 or aug.shift_y > 0:
            layers.append(keras.layers.RandomTranslation(
                height_factor=aug.shift_y, width_factor=aug.shift_x, fill_mode="constant",
                fill_value=0.0, interpolation="bilinear", name="shift"))
        return layers
    return []
