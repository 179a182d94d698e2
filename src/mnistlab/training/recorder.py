"""The one writer of a run's epochs, whichever backend trained it: metrics.csv, W&B metrics and
the other trackers' (MLflow, TensorBoard)."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mnistlab.atomic import write_atomically
from mnistlab.errors import NonFiniteLossError

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds")
# metrics.csv column -> W&B metric name
WANDB_NAMES = {c: c.replace("train_", "train/").replace("val_", "val/") for c in METRIC_COLUMNS}


class EpochRecorder:
    """Both backends hand each finished epoch here: one writer for metrics.csv and W&B metrics.

    An epoch is recorded (`log_epoch`), saved in the backend's checkpoint with the other rows
    (`rows`), and only then published (`publish`: metrics.csv rewritten atomically, the rows W&B
    lacks logged to it at step = epoch). So after a kill, the checkpoint and the published rows
    agree, and a resumed run (`restore`) publishes what its checkpoint holds. W&B writes in a
    process of its own: after a SIGKILL its files may lack epochs that metrics.csv has, so a
    resumed run is told which epochs the run's W&B history already holds (`wandb_logged`, read
    by mnistlab.run.tracking) and logs the others again, each epoch reaching W&B once. With a
    learning-rate schedule the backends also hand over each step's lr (`log_step_lr`): the
    epoch's `lr` is then the lr its last step trained with, and W&B gets every step's lr.
    """

    def __init__(self, run_dir: Path, wandb_run: Any = None, writes: bool = True,
                 on_published: Callable[[dict[str, float]], None] | None = None,
                 trackers: Sequence[Any] = ()) -> None:
        self.path = run_dir / "metrics.csv"
        # MLflow, TensorBoard (mnistlab.run.trackers): each gets the rows it lacks at `publish`
        self.trackers = list(trackers)
        # called with each newly published epoch's row (an Optuna trial's report; it may stop
        # the run by raising)
        self.on_published = on_published
        self.reported = 0  # epochs handed to on_published
        self.wandb_run = wandb_run
        self.rows: list[dict[str, float]] = []
        self.step_lrs: list[float] = []  # the current epoch's, with a schedule
        self._plots: dict[int, Any] = {}  # epoch -> its per-step lr plot, until published
        self.wandb_logged: set[int] = set()  # epochs the W&B run's history holds
        self.restored = 0  # epochs an earlier start had finished, when resumed
        self.first_batch_at: float | None = None  # time.time() of this start's first step
        self.writes = writes  # False in the other processes of a multi-process run
        if wandb_run is not None:  # charts over epochs; history is stepped by epoch too
            wandb_run.define_metric("epoch")
            wandb_run.define_metric("*", step_metric="epoch")
        if writes and not self.path.exists():  # else an earlier start's, until `publish`
            self._write_csv()

    def restore(self, rows: list[dict[str, float]]) -> None:
        """Continue after the epochs of a checkpoint; W&B gets those it lacks at the next
        `publish`."""
        self.rows = [dict(r) for r in rows]
        self.restored = len(self.rows)

    def log_step_lr(self, lr: float) -> None:
        self.step_lrs.append(float(lr))

    def mark_first_batch(self) -> None:
        """Called by the backends as each training batch starts; keeps the first time."""
        if self.first_batch_at is None:
            self.first_batch_at = time.time()

    def log_epoch(self, **values: float) -> None:
        row = {c: float(values[c]) for c in METRIC_COLUMNS}
        row["epoch"] = int(row["epoch"])
        if self.step_lrs:
            row["lr"] = self.step_lrs[-1]
            self._plots[row["epoch"]] = self._step_lr_plot(row["epoch"])
        self.rows.append(row)
        self.step_lrs = []
        if not math.isfinite(row["train_loss"]):
            self.publish()  # no checkpoint follows a diverged epoch
            raise NonFiniteLossError(
                f"training loss is {row['train_loss']} after epoch {row['epoch']}; "
                "the run diverged, try a smaller optimizer.lr"
            )

    def publish(self) -> None:
        """metrics.csv and W&B catch up with the recorded rows; call after the checkpoint."""
        if not self.writes:
            return
        self._write_csv()
        for row in self.rows:
            if self.wandb_run is not None and row["epoch"] not in self.wandb_logged:
                plot = self._plots.get(row["epoch"])
                extra = {"lr/steps": plot} if plot is not None else {}
                self.wandb_run.log({**{WANDB_NAMES[c]: row[c] for c in METRIC_COLUMNS}, **extra},
                                   step=row["epoch"])
                self.wandb_logged.add(row["epoch"])
        self._plots.clear()
        for tracker in self.trackers:
            tracker.log_epochs(self.rows, self.restored)
        if self.on_published is not None:
            for row in self.rows[max(self.reported, self.restored):]:
                self.reported = row["epoch"]
                self.on_published(row)

    def _write_csv(self) -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(METRIC_COLUMNS)
        writer.writerows([row[c] for c in METRIC_COLUMNS] for row in self.rows)
        write_atomically(self.path, out.getvalue())

    def _step_lr_plot(self, epoch: int) -> Any:
        """The epoch's per-step lr as a W&B line plot in the epoch's row (one row per epoch)."""
        if self.wandb_run is None:
            return None
        import wandb

        first = (epoch - 1) * len(self.step_lrs)
        table = wandb.Table(columns=["step", "lr"],
                            data=[[first + i, lr] for i, lr in enumerate(self.step_lrs)])
        return wandb.plot.line(table, "step", "lr", title=f"lr per step, epoch {epoch}")
