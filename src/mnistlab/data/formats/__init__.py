"""Dataset formats: one loader per `data.format`, each turning its files into the arrays every
dataset becomes (uint8 images (N, H, W, C), int64 labels, class names), with a test part or
without one (the split then cuts a stratified test set, as it cuts the validation set).

A new format is one module here, registered with `@FORMATS.register(name)`, and a
conf/data/<name>.yaml that sets `format: <name>`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mnistlab.errors import DataError
from mnistlab.registry import Registry


@dataclass(frozen=True)
class Loaded:
    """What a format reads: `x_*` uint8 (N, H, W, C), `y_*` int64 class indices into
    `classes`; no test part when the files have none. `files`: what it read, for the EDA."""

    title: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    files: dict[str, Path]

    def checked(self, source: Path | str) -> Loaded:
        """Labels in range and at least two classes, or one line naming `source`."""
        if len(self.classes) < 2:
            raise DataError(f"{source}: {len(self.classes)} class ({', '.join(self.classes)}); "
                            "a classifier needs at least two")
        for part, x, y in (("train", self.x_train, self.y_train),
                           ("test", self.x_test, self.y_test)):
            if y is None:
                continue
            if x.shape[1:] != self.x_train.shape[1:]:
                raise DataError(f"{source}: test images are {x.shape[1:]} (H, W, C) but "
                                f"training images {self.x_train.shape[1:]}")
            if len(x) != len(y):
                raise DataError(f"{source}: {len(x)} {part} images but {len(y)} labels")
            if y.size and (y.min() < 0 or y.max() >= len(self.classes)):
                bad = y.min() if y.min() < 0 else y.max()
                raise DataError(f"{source}: {part} label {bad} is not a class "
                                f"(0..{len(self.classes) - 1})")
        return self


Loader = Callable[[DictConfig], Loaded]
FORMATS: Registry[Loader] = Registry("data.format")


def as_uint8_images(x: np.ndarray, source: Path | str) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1|3) of uint8, or of floats in [0, 1], as uint8 (N, H, W, C)."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{source}: images of shape {x.shape}; expected (N, H, W) or "
                        "(N, H, W, C) with 1 or 3 channels")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating) and x.size and x.min() >= 0 and x.max() <= 1:
        return np.rint(x * 255).astype(np.uint8)
    raise DataError(f"{source}: images of dtype {x.dtype}; expected uint8, or floats in [0, 1]")




def load(data: DictConfig) -> Loaded:
    """The dataset `data` describes, read by its format's loader."""
    return FORMATS[data.format](data)


# each module registers its format; they import FORMATS from here, so they come last
from mnistlab.data.formats import digits, idx, image_folder, npz  # noqa: E402, F401
