"""The EDA's config and data checks, in this process: bad values are ConfigErrors naming key and
value, a wrong type fails at compose time, missing or bad data is a DataError; `explore` on
generated data of other shapes (RGB 32x32, gray 8x12) and class counts. Its runs:
tests/processes/test_eda_runs.py."""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from omegaconf import OmegaConf

from mnistlab.data import Splits, load_splits
from mnistlab.data.catalog import DatasetSpec
from mnistlab.eda.explore import FIGURES, explore, validate_eda
from mnistlab.errors import USER_ERRORS, ConfigError, DataError, one_line
from tests.conftest import (
    FILES,
    PNG_SIGNATURE,
    TEST_PER_CLASS,
    VAL_SIZE,
    compose_eda,
    write_idx,
    write_planted,
)


@pytest.mark.parametrize(("override", "message"), [
    ("outliers_per_class=0", "outliers_per_class=0 is not allowed; expected an integer from 1"),
    ("samples_per_class=101", "samples_per_class=101 is not allowed"),
    ("iqr_factor=-1", "iqr_factor=-1.0 is not allowed"),
    ("seed=-3", "seed=-3 is not allowed"),
    ("data.val_size=1.5", "data.val_size=1.5 is not allowed"),
])
def test_bad_values_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_eda(compose_eda([override, "logger=none"]))


def test_wrong_type_fails_at_compose_time() -> None:
    with pytest.raises(USER_ERRORS) as raised:
        compose_eda(["samples_per_class=many"])
    assert "samples_per_class" in one_line(raised.value)


def test_missing_data_folder_is_a_data_error(tmp_path: Path) -> None:
    cfg = compose_eda([f"paths.data={tmp_path / 'nowhere'}", "data.download=false"])
    with pytest.raises(DataError, match="nowhere"):
        load_splits(cfg.data)


def test_label_beyond_the_classes_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "mnist"
    write_planted(folder)
    labels = np.repeat(np.arange(10), TEST_PER_CLASS)
    labels[0] = 11
    write_idx(folder / FILES["test_labels"], labels.astype(np.uint8))
    cfg = compose_eda([f"paths.data={tmp_path / 'data'}", f"data.val_size={VAL_SIZE}"])
    with pytest.raises(DataError, match="test label 11 is not a class"):
        load_splits(cfg.data)


def test_split_too_small_for_val_size_is_a_config_error(tiny_data: Path) -> None:
    cfg = compose_eda([f"paths.data={tiny_data}", "data.val_size=295"])
    with pytest.raises(ConfigError, match="data.val_size=295"):
        load_splits(cfg.data)


def generated_splits(classes: tuple[str, ...], shape: tuple[int, int, int],
                     files: dict[str, Path]) -> Splits:
    """12 training images per class (2 of them validation) and 3 test ones: noise plus a bright
    square, in channel k of an RGB class k, in gray at a place per class otherwise."""
    height, width, channels = shape
    rng = np.random.default_rng(0)

    def part(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(len(classes)), per_class)
        x = rng.integers(0, 40, size=(len(y), *shape), dtype=np.uint8)
        for i, k in enumerate(y):
            x[i, k % height, :, k % channels] = 255
        return x, y.astype(np.int64)

    x, y = part(12)
    x_test, y_test = part(3)
    val_index = np.arange(len(y))[::6]
    train_index = np.setdiff1d(np.arange(len(y)), val_index)
    spec = DatasetSpec(name="gen", title="gen", classes=classes, image_shape=(height, width),
                       channels=channels, train_size=len(y))
    return Splits(spec=spec, files=files, x_train=x[train_index], y_train=y[train_index],
                  x_val=x[val_index], y_val=y[val_index], x_test=x_test, y_test=y_test,
                  train_index=train_index, val_index=val_index)


@pytest.mark.parametrize(("classes", "shape"), [
    (("cat", "dog", "fox"), (32, 32, 3)),
    (("a", "b", "c", "d"), (8, 12, 1)),
])
def test_explore_any_classes_and_image_shape(tmp_path: Path, classes: tuple[str, ...],
                                             shape: tuple[int, int, int]) -> None:
    """Every file for K classes of (H, W, C) images; the data read recorded as it is: a file
    with its sha256, a folder (an image folder's train/) by its path alone."""
    folder, arrays = tmp_path / "train", tmp_path / "arrays.npz"
    folder.mkdir()
    arrays.write_bytes(b"stand-in")
    splits = generated_splits(classes, shape, {"train": folder, "arrays": arrays})
    cfg = OmegaConf.create({
        "data": {"name": "gen", "val_size": 0.2, "split_seed": 42, "train_subset": None},
        "samples_per_class": 4, "outliers_per_class": 2, "iqr_factor": 1.5, "seed": 42})
    run_dir = tmp_path / "eda"
    run_dir.mkdir()
    figures, stats, rows = explore(cfg, splits, run_dir)

    assert json.loads((run_dir / "stats.json").read_text()) == stats
    k = len(classes)
    assert stats["classes"] == list(classes) and stats["input_shape"] == list(shape)
    assert stats["counts"] == {"train": [10] * k, "val": [2] * k, "test": [3] * k}
    assert len(stats["pixels"]["per_class"]) == len(stats["outliers"]["per_class"]) == k
    pool = np.concatenate([splits.x_train, splits.x_val]) / 255
    assert stats["pixels"]["mean"] == pytest.approx(pool.mean(), abs=1e-5)
    assert stats["files"] == {
        "train": {"path": str(folder)},
        "arrays": {"path": str(arrays), "sha256": hashlib.sha256(b"stand-in").hexdigest()}}
    with (run_dir / "outliers.csv").open() as f:
        assert {r["class"] for r in csv.DictReader(f)} == set(classes)
    assert {r["class"] for r in rows} == set(classes)
    for name in FIGURES:
        assert figures[name].read_bytes().startswith(PNG_SIGNATURE)
    samples = imread(figures["samples"])[..., :3]
    coloured = np.abs(samples[..., 0] - samples[..., 1]) > 0.5  # pure red or green pixels
    assert coloured.any() == (shape[-1] == 3)  # RGB in colour, one channel in gray


def test_no_files_is_recorded_as_none(tmp_path: Path) -> None:
    """A dataset that comes with a library (scikit-learn's digits) reads no file."""
    splits = generated_splits(("0", "1"), (8, 8, 1), {})
    cfg = OmegaConf.create({
        "data": {"name": "gen", "val_size": 0.2, "split_seed": 42, "train_subset": None},
        "samples_per_class": 2, "outliers_per_class": 1, "iqr_factor": 1.5, "seed": 0})
    _, stats, _ = explore(cfg, splits, tmp_path)
    assert stats["files"] == {} and stats["totals"] == {"train": 20, "val": 4, "test": 6}
