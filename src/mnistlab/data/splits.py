"""The one train/validation/test split that both backends and the EDA use."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mnistlab.atomic import write_atomically
from mnistlab.data.catalog import DATASETS, ROLES, DatasetSpec
from mnistlab.data.download import ensure_files
from mnistlab.data.idx import read_idx
from mnistlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class Splits:
    """uint8 images (N, 28, 28) and int64 labels; `*_index` are positions in the official files."""

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


def read_dataset(folder: Path, spec: DatasetSpec) -> dict[str, np.ndarray]:
    arrays = {role: read_idx(folder / spec.files[role], 3 if "images" in role else 1)
              for role in ROLES}
    for split in ("train", "test"):
        n_img, n_lab = len(arrays[f"{split}_images"]), len(arrays[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(f"{folder}: {n_img} {split} images but {n_lab} labels")
        labels = arrays[f"{split}_labels"]
        if labels.size and labels.max() >= len(spec.classes):
            raise DataError(f"corrupt data file {folder / spec.files[f'{split}_labels']}: label "
                            f"{labels.max()} is not a class (0..{len(spec.classes) - 1})")
    return arrays


def cache_dir() -> Path:
    """MNISTLAB_CACHE_DIR, else $XDG_CACHE_HOME/mnistlab, else ~/.cache/mnistlab."""
    if "MNISTLAB_CACHE_DIR" in os.environ:
        return Path(os.environ["MNISTLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mnistlab"


def split_indices(labels: np.ndarray, val_size: int, seed: int,
                  folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The study's stratified train_test_split of the official training file's positions.

    It depends only on the labels, val_size and seed, so it is computed once and cached under
    their checksum: later runs skip it and scikit-learn's import (most of a run's data start-up).
    """
    key = hashlib.sha256(labels.tobytes()).hexdigest()[:16]
    cache = cache_dir() / "splits" / f"{key}-{len(labels)}-{val_size}-{seed}.npz"
    # absent or unreadable: computed again
    with contextlib.suppress(OSError, ValueError, KeyError), np.load(cache) as stored:
        return stored["train"], stored["val"]
    from sklearn.model_selection import train_test_split  # slow import: only when not cached

    try:
        train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=val_size,
                                              stratify=labels, random_state=seed)
    except ValueError as e:  # too few images for val_size, or for a class on either side
        raise ConfigError(f"cannot split the {len(labels)} training images of {folder} with "
                          f"data.val_size={val_size}: {e}") from None
    buffer = io.BytesIO()
    np.savez(buffer, train=train_idx, val=val_idx)
    with contextlib.suppress(OSError):  # a read-only home only costs the next run the split
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(cache, buffer.getvalue())
    return train_idx, val_idx


def load_splits(data: DictConfig) -> Splits:
    """Read (downloading if needed) the dataset and split it exactly as the study did."""
    spec = DATASETS[data.name]
    folder = Path(data.dir).expanduser().resolve()
    names = [spec.files[r] for r in ROLES]
    ensure_files(folder, names, spec.md5, list(data.mirrors), data.download)
    arrays = read_dataset(folder, spec)
    labels = arrays["train_labels"].astype(np.int64)
    train_idx, val_idx = split_indices(labels, data.val_size, data.split_seed, folder)
    if data.train_subset is not None:
        train_idx = train_idx[: data.train_subset]
    images = arrays["train_images"]
    return Splits(
        spec=spec,
        files={r: folder / spec.files[r] for r in ROLES},
        x_train=images[train_idx], y_train=labels[train_idx],
        x_val=images[val_idx], y_val=labels[val_idx],
        x_test=arrays["test_images"], y_test=arrays["test_labels"].astype(np.int64),
        train_index=train_idx, val_index=val_idx,
    )
