"""The files every run writes, whichever backend trained it: metrics.csv and summary.json."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab.atomic import write_atomically
from mnistlab.errors import NonFiniteLossError

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds")
# metrics.csv column -> W&B metric name
WANDB_NAMES = {c: c.replace("train_", "train/").replace("val_", "val/") for c in METRIC_COLUMNS}


@dataclass
class FitResult:
    """What only the backend knows; everything else in summary.json comes from the epoch rows."""

    params: int
    test_loss: float
    test_acc: float


class EpochRecorder:
    """Both backends hand each finished epoch here: one writer for metrics.csv and W&B metrics.

    With a learning-rate schedule the backends also hand over each step's lr (`log_step_lr`):
    the epoch's `lr` is then the lr its last step trained with, and W&B gets every step's lr.
    """

    def __init__(self, run_dir: Path, wandb_run: Any = None) -> None:
        self.path = run_dir / "metrics.csv"
        self.wandb_run = wandb_run
        self.rows: list[dict[str, float]] = []
        self.step_lrs: list[float] = []  # the current epoch's, with a schedule
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerow(METRIC_COLUMNS)

    def log_step_lr(self, lr: float) -> None:
        self.step_lrs.append(float(lr))

    def log_epoch(self, **values: float) -> None:
        row = {c: float(values[c]) for c in METRIC_COLUMNS}
        row["epoch"] = int(row["epoch"])
        if self.step_lrs:
            row["lr"] = self.step_lrs[-1]
        self.rows.append(row)
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row[c] for c in METRIC_COLUMNS])
        if self.wandb_run is not None:
            self.wandb_run.log({**{WANDB_NAMES[c]: row[c] for c in METRIC_COLUMNS},
                                **self._wandb_step_lrs(row["epoch"])})
        self.step_lrs = []
        if not math.isfinite(row["train_loss"]):
            raise NonFiniteLossError(
                f"training loss is {row['train_loss']} after epoch {row['epoch']}; "
                "the run diverged, try a smaller optimizer.lr"
            )


    def _wandb_step_lrs(self, epoch: int) -> dict[str, Any]:
        """This epoch's per-step lr as a W&B line plot in the epoch's row (one row per epoch)."""
        if not self.step_lrs:
            return {}
        import wandb

        first = (epoch - 1) * len(self.step_lrs)
        table = wandb.Table(columns=["step", "lr"],
                            data=[[first + i, lr] for i, lr in enumerate(self.step_lrs)])
        title = f"lr per step, epoch {epoch}"
        return {"lr/steps": wandb.plot.line(table, "step", "lr", title=title)}


def _finite(value: Any) -> Any:
    """JSON has no NaN: a diverged metric is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def build_summary(
    *, status: str, error: str | None, cfg: Any, rows: list[dict[str, float]],
    result: FitResult | None, n_train: int, wall_seconds: float, overrides: list[str],
) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    best = max(rows, key=lambda r: r["val_acc"]) if rows else {}
    seconds = sum(r["epoch_seconds"] for r in rows)
    summary = {
        "status": status,
        "error": error,
        "backend": cfg.backend.name,
        "dataset": cfg.data.name,
        "seed": cfg.trainer.seed,
        "epochs_completed": len(rows),
        "params": result.params if result else None,
        "train_loss": last.get("train_loss"),
        "train_acc": last.get("train_acc"),
        "val_loss": last.get("val_loss"),
        "val_acc": last.get("val_acc"),
        "test_loss": result.test_loss if result else None,
        "test_acc": result.test_acc if result else None,
        "best_val_acc": best.get("val_acc"),
        "best_epoch": best.get("epoch"),
        "wall_seconds": round(wall_seconds, 3),
        "train_samples_per_second": round(n_train * len(rows) / seconds, 1) if seconds else None,
        "overrides": list(overrides),
    }
    return {k: _finite(v) for k, v in summary.items()}


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Readers (the report, a sweep's callback) never see a half-written summary."""
    write_atomically(path, json.dumps(payload, indent=2) + "\n")
