"""The one train/validation/test split that both backends and the EDA use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mnistlab.data.cache import cache_dir, read_cached, write_cached
from mnistlab.data.catalog import DatasetSpec, known_spec
from mnistlab.data.formats import load as load_dataset
from mnistlab.errors import ConfigError


@dataclass(frozen=True)
class Splits:
    """uint8 images (N, H, W, C) and int64 labels; `*_index` are positions in the files'
    training part."""

    spec: DatasetSpec
    files: dict[str, Path]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray = field(repr=False)
    val_index: np.ndarray = field(repr=False)

    def checksums(self) -> dict[str, str]:
        """sha256 of each split's images and labels, as trained and tested on: two runs with
        equal checksums saw the same data, split the same way, whatever files it came from."""
        digests = {}
        for part in ("train", "val", "test"):
            digest = hashlib.sha256()
            for array in (getattr(self, f"x_{part}"), getattr(self, f"y_{part}")):
                digest.update(np.ascontiguousarray(array).data)
            digests[part] = digest.hexdigest()
        return digests

    def limited(self, train: int | None, val: int | None, test: int | None) -> Splits:
        """The first n samples of each split: how the debug trainer stays fast on both backends."""
        def cut(n: int | None) -> slice:
            return slice(None) if n is None else slice(0, n)

        return Splits(
            spec=self.spec, files=self.files,
            x_train=self.x_train[cut(train)], y_train=self.y_train[cut(train)],
            x_val=self.x_val[cut(val)], y_val=self.y_val[cut(val)],
            x_test=self.x_test[cut(test)], y_test=self.y_test[cut(test)],
            train_index=self.train_index[cut(train)], val_index=self.val_index[cut(val)],
        )


def share_or_count(value: float) -> float | int:
    """A split size as scikit-learn takes it: below 1 a share of the images, else a count."""
    return float(value) if value < 1 else int(value)


def split_indices(labels: np.ndarray, size: float, seed: int, source: str,
                  what: str = "data.val_size") -> tuple[np.ndarray, np.ndarray]:
    """A stratified train_test_split of the positions of `labels`: (kept, cut off).

    It depends only on the labels, the size and the seed, so it is computed once and cached under
    their checksum: later runs skip it and scikit-learn's import (most of a run's data start-up).
    """
    key = hashlib.sha256(labels.tobytes()).hexdigest()[:16]
    cache = cache_dir() / "splits" / f"{key}-{len(labels)}-{size:g}-{seed}.npz"
    stored = read_cached(cache)
    if stored is not None and {"train", "val"} <= stored.keys():
        return stored["train"], stored["val"]
    from sklearn.model_selection import train_test_split  # slow import: only when not cached

    try:
        kept, cut = train_test_split(np.arange(len(labels)), test_size=share_or_count(size),
                                     stratify=labels, random_state=seed)
    except ValueError as e:  # too few images for the size, or for a class on either side
        raise ConfigError(f"cannot split the {len(labels)} training images of {source} with "
                          f"{what}={size:g}: {e}") from None
    write_cached(cache, train=kept, val=cut)
    return kept, cut


def load_splits(data: DictConfig) -> Splits:
    """Read the dataset (downloading an IDX one if needed) and split it: the study's exact
    split for MNIST; a stratified test part first when the files have none."""
    loaded = load_dataset(data)
    source = data.get("dir") or data.get("path") or data.name
    pool = np.arange(len(loaded.y_train))  # positions in the files' training part
    x_test, y_test = loaded.x_test, loaded.y_test
    if x_test is None:
        pool, test_idx = split_indices(loaded.y_train, data.test_size, data.split_seed, source,
                                       "data.test_size")
        x_test, y_test = loaded.x_train[test_idx], loaded.y_train[test_idx]
    labels = loaded.y_train[pool]
    train_idx, val_idx = split_indices(labels, data.val_size, data.split_seed, source)
    train_idx, val_idx = pool[train_idx], pool[val_idx]
    if data.train_subset is not None:
        train_idx = train_idx[: data.train_subset]
    images, labels = loaded.x_train, loaded.y_train
    height, width, channels = images.shape[1:]
    spec = known_spec(data) or DatasetSpec(
        name=data.name, title=loaded.title, classes=loaded.classes,
        image_shape=(height, width), channels=channels, train_size=len(pool))
    return Splits(
        spec=spec, files=loaded.files,
        x_train=images[train_idx], y_train=labels[train_idx],
        x_val=images[val_idx], y_val=labels[val_idx],
        x_test=x_test, y_test=y_test,
        train_index=train_idx, val_index=val_idx,
    )
