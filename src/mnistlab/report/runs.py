"""Reading run directories for mnistlab.report: each job's summary.json, metrics.csv, resolved
config (.hydra/config.yaml) and confusion.csv, leniently, since failed jobs lack files."""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mnistlab.config import flatten
from mnistlab.config.schema import as_current

SKIP_DIRS = frozenset({"wandb", "checkpoints"})  # a logger's or checkpointer's summary.json


@dataclass(frozen=True)
class Confusion:
    """A run's test-set confusions, with the class names its confusion.csv gives."""

    classes: tuple[str, ...]  # in label order
    matrix: np.ndarray  # KxK, rows true, columns predicted


@dataclass
class Run:
    """What one run directory holds, read once and leniently (failed jobs lack files)."""

    name: str  # the ``run`` column: path relative to the report dir
    summary: dict[str, Any]
    config: dict[str, Any] | None  # flattened .hydra/config.yaml, None if unreadable
    metrics: dict[str, list[float]]  # metrics.csv column -> values per epoch
    confusion: Confusion | None = None  # confusion.csv: its class names and KxK counts
    # eval.py's robustness.csv on the run's own test set: transform -> [(strength, accuracy)]
    robustness: dict[str, list[tuple[float, float]]] = field(default_factory=dict)


def find_runs(dirs: Sequence[Path]) -> list[Path]:
    """Every directory under ``dirs`` (inclusive) holding a summary.json, and every job
    directory of a training sweep even without one (damaged, or never started), deduplicated."""
    found: dict[Path, None] = {}
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
            if "summary.json" in files:
                found.setdefault(Path(root).resolve())
            if "multirun.yaml" in files and _trains(Path(root) / "multirun.yaml"):
                for job in subdirs:  # Hydra names a job's directory by its number
                    if job.isdigit() or (Path(root) / job / ".hydra").is_dir():
                        found.setdefault((Path(root) / job).resolve())
    return sorted(found, key=lambda p: natural_key(str(p)))


def _trains(multirun_yaml: Path) -> bool:
    """A sweep of train.py (whose jobs write summary.json), not of the EDA."""
    sweep = _read_yaml(multirun_yaml)
    job = sweep.get("hydra", {}).get("job", {}) if isinstance(sweep, dict) else {}
    return isinstance(job, dict) and job.get("name", "train") == "train"


def natural_key(text: str) -> list[Any]:
    """Sort job 10 after job 9."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text)]


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json; a missing or unreadable one, or a completed run whose metrics.csv
    is gone, makes a failed run listed with what is wrong, not a crash or a silent gap."""
    path = run_dir / "summary.json"
    if not path.exists():
        why = ("empty job directory: the job never started" if not any(run_dir.iterdir())
               else "no summary.json: the job stopped before it wrote one")
        return {"status": "failed", "error": why}
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"status": "failed", "error": f"unreadable summary.json: {exc}"}
    if not isinstance(summary, dict):
        return {"status": "failed", "error": "bad summary"}
    if summary.get("status") == "completed" and not (run_dir / "metrics.csv").is_file():
        return {**summary, "status": "failed",
                "error": "summary.json says completed, but metrics.csv is missing"}
    return summary


def to_float(value: Any) -> float:
    """NaN for what is no number (an empty metrics.csv cell), so a bad cell spoils no column."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(path: Path) -> dict[str, list[float]]:
    """metrics.csv by column; {} when the job died before logging an epoch."""
    try:
        with path.open(newline="") as f:
            records = list(csv.DictReader(f))
    except OSError:
        return {}
    columns: dict[str, list[float]] = {}
    for record in records:
        for key, value in record.items():
            if key is not None:
                columns.setdefault(key, []).append(to_float(value))
    return columns


def read_named_confusion(path: Path) -> Confusion | None:
    """A run's test-set confusions and class names, or None when confusion.csv is absent or
    unreadable.

    Format (the trainers write it): CSV, a header row ``true\\pred,<class>,...`` naming the K
    classes in label order, then one row per true class, ``<class>,<count predicted as the first
    class>,...``. Earlier versions named the classes by label (``0..K-1``; MNIST's names still
    are). Read leniently: blank lines, spaces, a BOM, float counts and any row order are fine;
    the header is optional (without it the rows are labels 0..K-1 and the columns in that order),
    and a header of the labels 0..K-1 in another order says which column is which. Anything
    short of a full KxK matrix is None.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    size = len(records[0]) - 1 if records else 0
    if size < 1 or len(records) not in (size, size + 1):
        return None
    named = len(records) == size + 1  # a header and K rows; without the header K rows
    names = records[0][1:] if named else [str(label) for label in range(size)]
    numbers = [_class_label(n) for n in names]
    labels = [n for n in numbers if n is not None]
    numbered = sorted(labels) == list(range(size))  # labels, possibly in another order
    if not numbered and len(set(names)) < size:
        return None
    classes = tuple(str(label) for label in range(size)) if numbered else tuple(names)
    columns = labels if numbered else list(range(size))
    rows = {name: label for label, name in enumerate(classes)}
    matrix = np.full((size, size), np.nan)
    for record in records[int(named):]:
        label = _class_label(record[0]) if numbered else rows.get(record[0])
        if label is None or not 0 <= label < size or len(record) - 1 != size:
            return None
        matrix[label, columns] = [to_float(count) for count in record[1:]]
    return Confusion(classes, matrix) if np.isfinite(matrix).all() else None


def read_confusion(path: Path) -> np.ndarray | None:
    """The KxK matrix of confusion.csv alone (see `read_named_confusion`), or None."""
    confusion = read_named_confusion(path)
    return None if confusion is None else confusion.matrix


def _class_label(text: str) -> int | None:
    number = to_float(text)
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _run_name(path: Path, out_dir: Path) -> str:
    out = out_dir.resolve()
    return path.name if path == out else Path(os.path.relpath(path, out)).as_posix()


def load_run(path: Path, out_dir: Path) -> Run:
    """Everything the report needs from one run directory, named relative to ``out_dir``."""
    config = _read_yaml(path / ".hydra" / "config.yaml")
    flat = as_current(flatten(config)) if isinstance(config, dict) else None
    return Run(
        name=_run_name(path, out_dir),
        summary=_read_summary(path),
        config=flat,
        metrics=read_metrics(path / "metrics.csv"),
        confusion=read_named_confusion(path / "confusion.csv"),
        robustness=read_robustness(path, (flat or {}).get("data.name")),
    )


# runs.csv's columns after the config keys (mnistlab.report.results.RESULT_COLUMNS) and the
# summary.json keys they come from
TABLE_SUMMARY = {"status": "status", "epochs": "epochs_completed", "train_acc": "train_acc",
                 "val_acc": "val_acc", "test_acc": "test_acc", "best_val_acc": "best_val_acc",
                 "best_epoch": "best_epoch", "wall_seconds": "wall_seconds", "error": "error"}
TABLE_EXPERIMENT = "experiment"  # runs.csv's column of named experiments, when they ran


def runs_from_table(path: Path) -> list[Run]:
    """The runs of a report's runs.csv, to report them again where their directories are gone
    (a committed report): each row's summary numbers, and as its config the keys that varied
    (the columns between ``run`` and ``status``) with its experiment. There are no curves,
    confusions or provenance: those live in the run directories."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        records = list(reader)
    if columns[:1] != ["run"] or "status" not in columns:
        raise ValueError(f"{path}: not a report's runs.csv (columns run, ..., status, ...)")
    keys = columns[1:columns.index("status")]
    runs = [Run(name=r["run"],
                summary={TABLE_SUMMARY[c]: _cell_value(r[c]) for c in TABLE_SUMMARY if c in r},
                config={k: _cell_value(r[k]) for k in keys if r[k] != ""},
                metrics={})
            for r in records]  # fmt: skip
    return sorted(runs, key=lambda run: natural_key(run.name))  # as find_runs orders directories


def _cell_value(text: str) -> Any:
    """A runs.csv cell as the value it was written from: numbers, null (empty), else text."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_robustness(path: Path, dataset: Any) -> dict[str, list[tuple[float, float]]]:
    """eval.py's curves of the best checkpoint on the run's own test set
    (eval/best-<data>-test/robustness.csv); {} when it was not evaluated so."""
    curves: dict[str, list[tuple[float, float]]] = {}
    try:
        with (path / "eval" / f"best-{dataset}-test" / "robustness.csv").open() as f:
            for row in csv.DictReader(f):
                curves.setdefault(row["transform"], []).append(
                    (float(row["strength"]), float(row["accuracy"])))
    except (OSError, KeyError, ValueError):
        return {}
    return curves
