"""Arrays in one .npz (`data.path`): x_train, y_train, and optionally x_test, y_test and
classes (names, in label order; else the labels' numbers)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from mnistlab.data.formats import FORMATS, Loaded, as_uint8_images
from mnistlab.errors import DataError

REQUIRED = ("x_train", "y_train")


def _labels(y: np.ndarray, path: Path, key: str) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise DataError(f"{path}: {key} has dtype {y.dtype} and shape {y.shape}; expected one "
                        "integer label per image")
    return y.astype(np.int64)


@FORMATS.register("npz")
def load_npz(data: DictConfig) -> Loaded:
    path = Path(data.path).expanduser().resolve()
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except FileNotFoundError:
        raise DataError(f"data file not found: {path} (data.path)") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz ({e})") from None
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)}; an .npz dataset holds x_train, "
                        "y_train and optionally x_test, y_test, classes")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: x_test and y_test come together or not at all")
    y_train = _labels(arrays["y_train"], path, "y_train")
    y_test = _labels(arrays["y_test"], path, "y_test") if "y_test" in arrays else None
    if "classes" in arrays:
        classes = tuple(str(c) for c in arrays["classes"])
    else:
        top = max(int(y.max()) for y in (y_train, y_test) if y is not None and y.size)
        classes = tuple(str(c) for c in range(top + 1))
    x_test = arrays.get("x_test")
    return Loaded(
        title=path.stem, classes=classes,
        x_train=as_uint8_images(arrays["x_train"], path), y_train=y_train,
        x_test=None if x_test is None else as_uint8_images(x_test, path), y_test=y_test,
        files={"arrays": path},
    ).checked(path)
