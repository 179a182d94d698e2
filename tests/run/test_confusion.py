"""Each run's test-set errors: the confusion matrix, and the most confidently wrong images first
(what a run logs of them to W&B: tests/processes/test_wandb_records.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistlab.report import read_confusion
from mnistlab.run.confusion import (
    Predictions,
    confusion_matrix,
    most_confidently_wrong,
    write_confusion_csv,
)


def test_confusion_matrix_rows_are_true_classes_and_round_trip(tmp_path: Path) -> None:
    y_true, y_pred = np.array([6, 6, 9, 9, 9, 0]), np.array([9, 6, 6, 9, 9, 0])
    matrix = confusion_matrix(y_true, y_pred, 10)
    assert matrix[6, 9] == 1 and matrix[9, 6] == 1 and matrix[9, 9] == 2 and matrix.sum() == 6
    write_confusion_csv(tmp_path / "confusion.csv", matrix)
    assert (tmp_path / "confusion.csv").read_text().splitlines()[0] == (
        "true\\pred,0,1,2,3,4,5,6,7,8,9")
    np.testing.assert_array_equal(read_confusion(tmp_path / "confusion.csv"), matrix)


def test_most_confidently_wrong_first() -> None:
    predictions = Predictions(labels=np.array([1, 2, 3, 4]),
                              confidence=np.array([0.9, 0.99, 0.5, 0.7]))
    y_true = np.array([1, 0, 0, 0])  # image 0 is right
    assert most_confidently_wrong(y_true, predictions, 2).tolist() == [1, 3]
