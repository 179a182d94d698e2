"""What a backend's `fit` gets and gives back, and what its loaded checkpoint can do: the
contract between the framework and each backend (`mnistlab.backends`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from omegaconf import DictConfig

from mnistlab.data import Splits
from mnistlab.training.recorder import EpochRecorder


@dataclass(frozen=True)
class Predictions:
    """The best checkpoint's test-set predictions: class and its softmax probability."""

    labels: np.ndarray  # predicted class per test image
    confidence: np.ndarray  # probability of that class


@dataclass
class FitResult:
    """What only the backend knows; everything else in summary.json comes from the epoch rows."""

    params: int
    test_loss: float
    test_acc: float
    test_predictions: Predictions | None = None  # the best checkpoint's, on rank 0


class Classifier(Protocol):
    """A finished run's network, loaded by its backend (`Backend.load_classifier`)."""

    def logits(self, x: np.ndarray, batch_size: int, precision: str | None = None) -> np.ndarray:
        """uint8 (N, H, W, C) images -> float32 logits (N, classes), at the run's
        trainer.precision unless `precision` says otherwise ("32-true": fp32)."""
        ...

    def export_onnx(self, path: Path, input_shape: tuple[int, int, int]) -> None:
        """The fp32 network as ONNX: (N, H, W, C) floats in [0, 1] -> logits, batch dynamic."""
        ...


def _nothing() -> None:
    return None


@dataclass
class RunContext:
    """Where a backend writes (checkpoints/ under run_dir), whom it reports epochs to, whether
    it continues from its last checkpoint there (`resume`), and what it calls once that
    checkpoint is restored and training starts (`on_start`: the `running` summary)."""

    run_dir: Path
    recorder: EpochRecorder
    wandb_run: Any = None
    resume: bool = False
    on_start: Callable[[], None] = _nothing


def steps_per_epoch(cfg: DictConfig, data: Splits) -> int:
    """Optimizer steps in one epoch on either backend: the last, smaller batch is kept."""
    return -(-len(data.x_train) // cfg.data.batch_size)


def reached_target(val_acc: float, target: float | None) -> bool:
    """Whether val_acc reached trainer.stop_at_val_acc (never when it is null), compared in
    float32, the precision of both backends' metrics: 4935 of 5000 right is 0.98699999 in
    float32, and reaches 0.987."""
    return target is not None and bool(np.float32(val_acc) >= np.float32(target))


def float32_below(target: float) -> float:
    """The float32 just under `target`: above it (Lightning's EarlyStopping threshold is a
    strict `>`) is reached_target's `>=`."""
    return float(np.nextafter(np.float32(target), np.float32(0)))


# warm validation passes a bench bare loop times after training; the fastest counts
EVAL_PASSES = 3


@dataclass
class Timings:
    """A bench bare loop's seconds per epoch (training and its validation pass, and training
    alone) and of the fastest of its EVAL_PASSES warm validation passes after training, and that
    pass's loss (with the L2 penalty, as mnistlab's) and accuracy, which show that the bare run
    learns what the mnistlab run learns; and its last epoch's training loss and accuracy, which
    every loop here computes as it trains (mnistlab's metrics.csv, Keras' fit)."""

    epoch_seconds: list[float]
    train_seconds: list[float]
    eval_seconds: float
    val_loss: float
    val_acc: float
    train_loss: float
    train_acc: float
