"""What a run's best checkpoint gets wrong on the test set, written the same way for both
backends: confusion.csv and confusion.png (rows: true class, columns: predicted class),
wrong.png (the most confidently wrong test images) and, with W&B, the same as
`wandb.plot.confusion_matrix` and images. Any K classes and (H, W, C) images; confusion.csv names
its rows and columns by class, so the report reads it without the dataset."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnistlab.atomic import write_atomically
from mnistlab.plotting import save_png
from mnistlab.training.contract import Predictions

WRONG_SHOWN = 24  # images in wrong.png


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(y_true * classes + y_pred, minlength=classes * classes).reshape(
        classes, classes)


def write_confusion_csv(path: Path, matrix: np.ndarray, classes: Sequence[str]) -> None:
    """Header ``true\\pred,<class>,...``, then a row per true class in label order (MNIST's
    names are its digits, so its file reads as the label numbers did)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["true\\pred", *classes])
    writer.writerows([name, *row] for name, row in zip(classes, matrix.tolist(), strict=True))
    write_atomically(path, out.getvalue())


def drawable(image: np.ndarray) -> np.ndarray:
    """(H, W) for one channel, as imshow and wandb.Image take grayscale; (H, W, 3) RGB as is."""
    return image[..., 0] if image.shape[-1] == 1 else image


def most_confidently_wrong(y_true: np.ndarray, predictions: Predictions, k: int) -> np.ndarray:
    """Indices of up to k wrong test images, the most confident first."""
    wrong = np.flatnonzero(predictions.labels != y_true)
    return wrong[np.argsort(-predictions.confidence[wrong], kind="stable")][:k]


def plot_confusion(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    grow = 0.4 * len(classes)  # 0.4 in a class: beyond 10 the figure grows, counts stay legible
    fig = Figure(figsize=(max(7.0, grow + 3), max(6.0, grow + 2)))
    ax = fig.add_subplot()
    shown = matrix.astype(float)
    np.fill_diagonal(shown, np.nan)  # the errors, not the (much larger) correct counts
    image = ax.imshow(shown, cmap="Reds")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                color="black" if i != j else "tab:green")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}: test-set confusions")
    fig.colorbar(image, ax=ax, label="wrongly classified test images (correct: green)")
    fig.tight_layout()
    save_png(fig, path)


def plot_wrong(images: np.ndarray, captions: list[str], title: str, path: Path) -> None:
    """(N, H, W, C) images: one channel in inverted gray (ink dark), RGB in colour."""
    from matplotlib.figure import Figure

    columns = 8
    rows = max(1, -(-len(images) // columns))
    height, width = images.shape[1:3]
    fig = Figure(figsize=(columns * 1.3, rows * (1.3 * height / width + 0.2) + 0.5))
    for i in range(rows * columns):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.axis("off")
        if i < len(images):
            ax.imshow(drawable(images[i]), cmap="gray_r")
            ax.set_title(captions[i], fontsize=7)
    fig.suptitle(f"{title}: the most confidently wrong test images (true -> predicted, p)")
    fig.tight_layout()
    save_png(fig, path)


def write_errors(run_dir: Path, x_test: np.ndarray, y_test: np.ndarray, classes: list[str],
                 predictions: Predictions, title: str, wandb_run: Any = None,
                 step: int | None = None) -> np.ndarray:
    """Write confusion.csv, confusion.png and wrong.png for the (N, H, W, C) test images and
    their K `classes` (and log them to W&B, into the history row of the last epoch, `step`);
    returns the confusion matrix."""
    matrix = confusion_matrix(y_test, predictions.labels, len(classes))
    write_confusion_csv(run_dir / "confusion.csv", matrix, classes)
    plot_confusion(matrix, classes, title, run_dir / "confusion.png")
    wrong = most_confidently_wrong(y_test, predictions, WRONG_SHOWN)
    captions = [f"#{i}: {classes[y_test[i]]} -> {classes[predictions.labels[i]]}, "
                f"{predictions.confidence[i]:.2f}" for i in wrong]
    plot_wrong(x_test[wrong], captions, title, run_dir / "wrong.png")
    if wandb_run is not None:
        import wandb

        wandb_run.log({
            "test/confusion": wandb.plot.confusion_matrix(
                y_true=y_test.tolist(), preds=predictions.labels.tolist(), class_names=classes),
            "test/wrong": [wandb.Image(drawable(x_test[i]), caption=c)
                           for i, c in zip(wrong, captions, strict=True)],
        }, step=step)
    return matrix
