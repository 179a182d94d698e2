"""Each run's test-set errors: confusion matrix, the most confidently wrong images, and W&B."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dirs, train_here
from matplotlib.image import imread

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


def wandb_records(run: Path) -> list[dict]:
    [piece] = (run / "wandb").glob("offline-run-*")
    out = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect",
                          "--json", str(piece)], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_a_run_writes_its_errors_and_one_wandb_row_per_epoch(backend: str, tiny_data: Path,
                                                            tmp_path: Path) -> None:
    done = train_here("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}",
                      f"backend={backend}", "logger=wandb", output=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path)
    matrix = read_confusion(run / "confusion.csv")
    assert matrix is not None and matrix.sum() == 50  # every test image, once
    for png in ("confusion.png", "wrong.png"):
        assert imread(run / png).ndim == 3
    records = wandb_records(run)
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["epoch"] for h in history] == [1, 2]  # one row per epoch, stepped by epoch
    assert any(k.startswith("test/confusion") for k in history[-1])
    summary: dict = {}
    for r in records:
        if r["type"] == "summary":
            summary.update(r["summary"]["update"])
    assert summary["best/val_acc"] == max(h["val/acc"] for h in history)
    assert summary["val/acc"] == history[-1]["val/acc"]  # the final values too
    assert summary["test/acc"] == json.loads((run / "summary.json").read_text())["test_acc"]
    metrics = [r["metric"] for r in records if r["type"] == "metric"]
    assert any(m.get("glob_name") == "*" and m.get("step_metric") == "epoch" for m in metrics)
