"""summary.json: what a run was and how it ended, rebuilt from the recorded epochs and the
backend's result at every write, and written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mnistlab.atomic import write_atomically
from mnistlab.training.contract import FitResult, reached_target


def _finite(value: Any) -> Any:
    """JSON has no NaN: a diverged metric is written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _seconds_until(rows: list[dict[str, float]], epoch: int | None) -> float | None:
    if epoch is None:
        return None
    return round(sum(r["epoch_seconds"] for r in rows if r["epoch"] <= epoch), 3)


def build_summary(
    *, status: str, error: str | None, cfg: Any, rows: list[dict[str, float]],
    result: FitResult | None, n_train: int, wall_seconds: float, overrides: list[str],
    resumed_from_epoch: int | None = None, seconds_to_first_batch: float | None = None,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    best = max(rows, key=lambda r: r["val_acc"]) if rows else {}
    seconds = sum(r["epoch_seconds"] for r in rows)
    target = cfg.trainer.stop_at_val_acc
    reached = next((r["epoch"] for r in rows if reached_target(r["val_acc"], target)), None)
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
        # training + validation seconds until the best epoch, and until trainer.stop_at_val_acc
        "seconds_to_best": _seconds_until(rows, best.get("epoch")),
        "seconds_to_target": _seconds_until(rows, reached),
        "wall_seconds": round(wall_seconds, 3),
        "train_samples_per_second": round(n_train * len(rows) / seconds, 1) if seconds else None,
        "overrides": list(overrides),
        "resumed_from_epoch": resumed_from_epoch,  # None: trained in one start
        # an Optuna search's pruner stopped the run after this epoch (its last in metrics.csv)
        "pruned_at_epoch": len(rows) if status == "pruned" else None,
        # from the process's start (interpreter, imports, data, model) to its first batch
        "seconds_to_first_batch": (round(seconds_to_first_batch, 3)
                                   if seconds_to_first_batch is not None else None),
        **(provenance or {}),  # the code's commit and the machine (mnistlab.run.provenance)
    }
    return {k: _finite(v) for k, v in summary.items()}


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Readers (the report, a sweep's callback) never see a half-written summary."""
    write_atomically(path, json.dumps(payload, indent=2) + "\n")


def _shown(path: Path) -> str:
    """A path as the user would type it from where they are."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _accuracy(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_summary(summary: dict[str, Any], max_epochs: int, run_dir: Path,
                  wandb_run: Any = None) -> None:
    """The run's results as a short table at the end of its output, as Keras' and Lightning's
    users expect one: status, epochs, accuracies, seconds, where the files are, and how to send
    an offline W&B run to the server."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnistlab run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("status", summary["status"]),  # a failure's error is the line printed before
        ("epochs", f"{summary['epochs_completed']} of {max_epochs}"),
        ("val accuracy", f"best {_accuracy(summary['best_val_acc'])} (epoch "
                         f"{summary['best_epoch'] or '-'}), final {_accuracy(summary['val_acc'])}"),
        ("test accuracy", f"{_accuracy(summary['test_acc'])} (best checkpoint)"),
        ("seconds", f"{summary['wall_seconds']:.1f}"),
        ("run directory", _shown(run_dir)),
    ]
    if wandb_run is not None:
        offline = getattr(wandb_run.settings, "mode", None) == "offline"
        rows.append(("W&B", f"wandb sync {_shown(run_dir)}/wandb/offline-run-*" if offline
                     else str(getattr(wandb_run, "url", "") or "")))
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    if not console.is_terminal:  # a log file: never wrap a path over two lines
        console = Console(width=max(console.width, 24 + max(len(v) for _, v in rows)))
    console.print(table)
