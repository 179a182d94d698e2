"""The run index: every run directory under some folders as one flat set of named values, for
`python -m mnistlab.runs ls` to filter, sort, tabulate and group.

The runs are read by :mod:`mnistlab.report.runs` (the same leniency as the report: a job that
died early is a failed row, not a crash). A run's names are ``run`` (its path relative to the
first folder), summary.json's keys (a dict such as ``machine`` flattened: ``machine.gpu``),
``epochs`` (``epochs_completed``, as the report calls it) and the resolved config's dotted keys;
where a summary key and a config key share a name, the summary's value wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from mnistlab.config import flatten
from mnistlab.errors import MnistlabError
from mnistlab.report.factors import SEED_KEY, comparable, level_key, value_text, varying_keys
from mnistlab.report.runs import Run, find_runs, load_run, natural_key
from mnistlab.report.stats import describe
from mnistlab.runs.query import unknown_name

DEFAULT_COLUMNS = ("run", "status", "backend", "dataset", "seed", "epochs", "test_acc",
                   "best_val_acc", "wall_seconds")
GROUP_METRICS = ("test_acc", "best_val_acc")  # what --group-by folds the seeds of
RowT = TypeVar("RowT", bound=Mapping[str, Any])


@dataclass(frozen=True)
class Entry:
    """One run: what the report's reader gives (its config for varying_keys) and its names."""

    run: Run
    values: dict[str, Any]


def load_index(dirs: Sequence[Path]) -> list[Entry]:
    """Every run under ``dirs``, in path order (time-stamped names: oldest first), named
    relative to the first; MnistlabError (one line) when there is none."""
    found = find_runs(dirs)
    if not found:
        raise MnistlabError(
            f"no runs (summary.json) found under {', '.join(str(d) for d in dirs)}")
    return [_entry(load_run(path, dirs[0])) for path in found]


def _entry(run: Run) -> Entry:
    values = {**(run.config or {}), **flatten(run.summary), "run": run.name}
    values["epochs"] = run.summary.get("epochs_completed")
    return Entry(run, values)


def known_keys(entries: Sequence[Entry]) -> list[str]:
    """Every name some run has, in first-seen order: what the options may name."""
    return list(dict.fromkeys(k for e in entries for k in e.values))


def check_keys(option: str, keys: Sequence[str], known: Sequence[str]) -> None:
    """A name no run has is one line with close matches, not an empty column."""
    for key in keys:
        if key not in known:
            raise unknown_name(option, key, known)


def default_columns(entries: Sequence[Entry]) -> list[str]:
    """DEFAULT_COLUMNS, then the config keys that vary between these runs (as the report's runs
    table has them; trainer.seed is the seed column already)."""
    varying = varying_keys([e.run.config for e in entries])
    return [*DEFAULT_COLUMNS, *(k for k in varying if k != SEED_KEY and k not in DEFAULT_COLUMNS)]


def rows(values: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """A row per run with exactly ``columns``; None where a run lacks the key."""
    return [{c: v.get(c) for c in columns} for v in values]


def sort_rows(table: Sequence[RowT], spec: str) -> list[RowT]:
    """By ``spec``'s key (``-key``: descending), numbers numerically and text naturally; rows
    lacking a value last either way."""
    key = spec.removeprefix("-")
    present = [r for r in table if r.get(key) is not None]
    missing = [r for r in table if r.get(key) is None]
    return [*sorted(present, key=lambda r: _order(r[key]), reverse=spec.startswith("-")),
            *missing]


def _order(value: Any) -> tuple[int, float, list[Any]]:
    """Numbers before text, so that a column of mixed values still sorts."""
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return 0, float(value), []
    return 1, 0.0, natural_key(value_text(value))


def group_columns(keys: Sequence[str]) -> list[str]:
    """--group-by's columns: the keys, the runs, and each metric's mean and std."""
    stats = [f"{m}_{s}" for m in GROUP_METRICS for s in ("mean", "std")]
    return [*keys, "n", "not_completed", "seeds", *stats]


def group_rows(entries: Sequence[Entry], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per combination of the keys' values (seeds and every other key folded), in the
    keys' level order: n completed runs, the others (running, interrupted, failed, pruned)
    counted apart, and the mean and sample std (the report's ``describe``) over the completed
    ones."""
    members: dict[tuple[str, ...], list[Entry]] = {}
    for entry in entries:
        members.setdefault(comparable(entry.values, keys), []).append(entry)
    table = []
    for group in members.values():
        done = [e for e in group if e.values.get("status") == "completed"]
        row: dict[str, Any] = {k: group[0].values.get(k) for k in keys}
        row.update(n=len(done), not_completed=len(group) - len(done),
                   seeds=[e.values.get("seed", e.values.get(SEED_KEY)) for e in group])
        for metric in GROUP_METRICS:
            stat = describe([v for e in done if _finite(v := e.values.get(metric))])
            row.update({f"{metric}_mean": stat.mean, f"{metric}_std": stat.std})
        table.append(row)
    return sorted(table, key=lambda r: [level_key(value_text(r[k])) for k in keys])


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))
