"""Each run's test-set errors: the confusion matrix, and the most confidently wrong images first,
for any classes and (H, W, C) images (what a run logs of them to W&B:
tests/processes/test_wandb_records.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from mnistlab.report.runs import read_confusion, read_named_confusion
from mnistlab.run.confusion import (
    Predictions,
    confusion_matrix,
    most_confidently_wrong,
    write_confusion_csv,
    write_errors,
)
from tests.conftest import PNG_SIGNATURE


def test_confusion_matrix_rows_are_true_classes_and_round_trip(tmp_path: Path) -> None:
    y_true, y_pred = np.array([6, 6, 9, 9, 9, 0]), np.array([9, 6, 6, 9, 9, 0])
    matrix = confusion_matrix(y_true, y_pred, 10)
    assert matrix[6, 9] == 1 and matrix[9, 6] == 1 and matrix[9, 9] == 2 and matrix.sum() == 6
    write_confusion_csv(tmp_path / "confusion.csv", matrix, [str(d) for d in range(10)])
    assert (tmp_path / "confusion.csv").read_text().splitlines()[0] == (
        "true\\pred,0,1,2,3,4,5,6,7,8,9")
    np.testing.assert_array_equal(read_confusion(tmp_path / "confusion.csv"), matrix)


def test_most_confidently_wrong_first() -> None:
    predictions = Predictions(labels=np.array([1, 2, 3, 4]),
                              confidence=np.array([0.9, 0.99, 0.5, 0.7]))
    y_true = np.array([1, 0, 0, 0])  # image 0 is right
    assert most_confidently_wrong(y_true, predictions, 2).tolist() == [1, 3]


@pytest.mark.parametrize("shape", [(32, 32, 3), (28, 28, 1)])
def test_write_errors_names_the_classes(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    """confusion.csv is KxK, its rows and columns named by class; the figures draw (H, W, C)
    images, RGB in colour."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(12, *shape), dtype=np.uint8)
    y = np.repeat(np.arange(3), 4)
    predictions = Predictions(labels=np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 0, 2]),
                              confidence=rng.uniform(0.4, 1, 12))
    classes = ["cat", "dog", "fox"]
    matrix = write_errors(tmp_path, x, y, classes, predictions, "gen")
    assert (tmp_path / "confusion.csv").read_text().splitlines() == [
        "true\\pred,cat,dog,fox", "cat,3,1,0", "dog,0,4,0", "fox,1,0,3"]
    confusion = read_named_confusion(tmp_path / "confusion.csv")
    assert confusion is not None and confusion.classes == tuple(classes)
    np.testing.assert_array_equal(confusion.matrix, matrix)
    for name in ("confusion.png", "wrong.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
    wrong = imread(tmp_path / "wrong.png")[..., :3]
    coloured = np.abs(wrong[..., 0] - wrong[..., 1]) > 0.5
    assert coloured.any() == (shape[-1] == 3)  # one channel in gray
