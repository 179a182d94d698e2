"""Summarise finished runs and sweeps: tables per run, per group of seeds and per effect (csv,
report.md, terminal), curves, ablation and parallel-coordinates figures, the study checked.

The framework calls :func:`write_report` at the end of every multirun with the sweep dir; by
hand: ``python -m mnistlab.report DIR [DIR...] [--out OUT]``. A run is any directory holding a
``summary.json``; failed jobs (no metrics, null accuracies) are listed, never fatal.

What varied is read from each run's resolved config (``.hydra/config.yaml``: what actually ran),
never from its override strings. Keys that change no result (NON_RESULT_*) are never compared,
``trainer.seed`` is the replicate axis, and a varying key whose value is a function of another
varying key's value is folded into it (``optimizer.rho`` exists only for ``rmsprop``, so it
follows ``optimizer.name``); the remaining keys are the *factors*. Runs that differ only in the
seed form a *group*. The statistics and the rule for comparing levels (matched runs only) are
in :mod:`mnistlab.report_stats`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from mnistlab.atomic import write_atomically
from mnistlab.report_plots import BAND, plot_ablation, plot_curves, plot_parallel
from mnistlab.report_stats import (
    METRICS,
    Comparison,
    Conclusion,
    Effect,
    Group,
    Obs,
    Stat,
    StudyRow,
    check_conclusions,
    describe,
    effect_verdict,
    factor_effects,
    load_study,
    study_rows,
    welch,
)

# A run overfits when val_loss rises for this many consecutive epochs while train_loss falls...
OVERFIT_RISING_EPOCHS = 3
# ...or when train_acc - val_acc exceeds this. Train accuracy is measured with dropout and
# augmentation on, so a negative gap is normal and never counts.
OVERFIT_GAP = 0.05

# Keys that differ between jobs without changing any result: never factors, never split groups.
NON_RESULT_ROOTS = frozenset({"paths", "logger", "hydra", "sweeps", "experiment"})
NON_RESULT_KEYS = frozenset(
    {"trainer.progress_bar", "data.dir", "data.mirrors", "data.download", "data.eval_batch_size"}
)
SEED_KEY = "trainer.seed"  # the replicate axis: a column, never a factor
# What an absent key means in configs written before it existed (or after it was removed), so
# that a report over old and new runs sees no difference that never was.
ABSENT_MEANS: dict[str, Any] = {"scheduler.name": "none", "model.num_classes": 10}
PARALLEL_MIN_FACTORS = 3  # parallel.png only when at least this many factors vary
SIX_NINE_FACTOR = "aug.name"

SKIP_DIRS = frozenset({"wandb", "checkpoints"})
RESULT_COLUMNS = (
    "status", "train_acc", "val_acc", "test_acc", "best_val_acc", "best_epoch", "gap",
    "wall_seconds", "overfit", "error",
)  # fmt: skip
ACC_COLUMNS = frozenset({"train_acc", "val_acc", "test_acc", "best_val_acc", "gap"})
NO_FACTOR = "(nothing varied)"
_MISSING = object()


class NoRunsError(SystemExit):
    """Nothing to report: exits the CLI with one line instead of a traceback."""


@dataclass
class Run:
    """What one run directory holds, read once and leniently (failed jobs lack files)."""

    path: Path
    name: str  # the ``run`` column: path relative to the report dir
    summary: dict[str, Any]
    config: dict[str, Any] | None  # flattened .hydra/config.yaml, None if unreadable
    metrics: dict[str, list[float]]  # metrics.csv column -> values per epoch
    confusion: np.ndarray | None = None  # confusion.csv, 10x10, rows true, columns predicted


@dataclass
class Report:
    """What was written, so the caller can act on failures without re-reading files."""

    rows: list[dict[str, Any]]  # keys: columns, in order; sorted by val_acc, failed last
    varying: list[str]  # config keys that differ between runs (the param columns)
    paths: dict[str, Path]  # file name -> path written
    columns: list[str] = field(default_factory=list)
    factors: list[str] = field(default_factory=list)  # what was compared (ablation subplots)
    reasons: dict[str, str] = field(default_factory=dict)  # run -> why it was flagged overfit
    folded: dict[str, list[str]] = field(default_factory=dict)  # factor -> keys that follow it
    groups: list[Group] = field(default_factory=list)  # best mean val_acc first
    effects: list[Effect] = field(default_factory=list)
    unmatched: int = 0  # level pairs with no matched runs, hence not compared
    study: list[StudyRow] = field(default_factory=list)
    conclusions: list[Conclusion] = field(default_factory=list)
    six_nine: dict[str, list[float]] = field(default_factory=dict)  # aug level -> per run
    job_counts: dict[str, int] | None = None

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "completed"]


# ---------------------------------------------------------------------------- reading runs


def find_runs(dirs: Sequence[Path]) -> list[Path]:
    """Every directory under ``dirs`` (inclusive) holding a summary.json, deduplicated."""
    found: dict[Path, None] = {}
    for top in dirs:
        for root, subdirs, files in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
            if "summary.json" in files:
                found.setdefault(Path(root).resolve())
    return sorted(found, key=lambda p: _natural_key(str(p)))


def _natural_key(text: str) -> list[Any]:
    """Sort job 10 after job 9."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text)]


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 0.001, ...}; lists stay whole values."""
    if not isinstance(cfg, dict) or not cfg:
        return {prefix: cfg} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"status": "failed", "error": f"unreadable summary.json: {exc}"}
    return summary if isinstance(summary, dict) else {"status": "failed", "error": "bad summary"}


def _to_float(value: Any) -> float:
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
                columns.setdefault(key, []).append(_to_float(value))
    return columns


def read_confusion(path: Path) -> np.ndarray | None:
    """A run's test-set confusion matrix, or None when confusion.csv is absent or unreadable.

    Format (the trainers write it): CSV, a header row ``true\\pred,0,1,...,9``, then one row per
    true label, ``<label>,<count predicted as 0>,...,<count predicted as 9>``: rows are true
    labels, columns predicted ones. Read leniently: blank lines, spaces, a BOM, float counts and
    any row order are fine; the header is optional (its numeric labels, when given, say which
    column is which; without it columns are 0..9). Anything short of a full 10x10 matrix is None.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            records = [[c.strip() for c in r] for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    columns: list[int | None] = list(range(10))
    matrix = np.full((10, 10), np.nan)
    for record in records:
        label = _class_label(record[0])
        if label is None:  # the header
            columns = [_class_label(c) for c in record[1:]]
            continue
        if not 0 <= label < 10 or len(record) - 1 != len(columns):
            return None
        for column, count in zip(columns, record[1:], strict=True):
            if column is not None and 0 <= column < 10:
                matrix[label, column] = _to_float(count)
    return matrix if np.isfinite(matrix).all() else None


def _class_label(text: str) -> int | None:
    number = _to_float(text)
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _run_name(path: Path, out_dir: Path) -> str:
    out = out_dir.resolve()
    return path.name if path == out else Path(os.path.relpath(path, out)).as_posix()


def load_run(path: Path, out_dir: Path) -> Run:
    config = _read_yaml(path / ".hydra" / "config.yaml")
    flat = {**ABSENT_MEANS, **flatten(config)} if isinstance(config, dict) else None
    return Run(
        path=path,
        name=_run_name(path, out_dir),
        summary=_read_summary(path / "summary.json"),
        config=flat,
        metrics=read_metrics(path / "metrics.csv"),
        confusion=read_confusion(path / "confusion.csv"),
    )


# ---------------------------------------------------------------------------- what varied


def is_result_key(key: str) -> bool:
    """Whether a config key can change a run's result (see NON_RESULT_*)."""
    return key.split(".", 1)[0] not in NON_RESULT_ROOTS and key not in NON_RESULT_KEYS


def _canon(value: Any) -> str:
    return "\0missing" if value is _MISSING else json.dumps(value, sort_keys=True, default=str)


def _result_keys(known: Sequence[dict[str, Any]]) -> list[str]:
    """Every result key of the configs, grouped by root in config order."""
    keys = list(dict.fromkeys(k for c in known for k in c))
    roots = list(dict.fromkeys(k.split(".", 1)[0] for k in keys))
    keys.sort(key=lambda k: roots.index(k.split(".", 1)[0]))  # a late aug.p stays by aug.name
    return [k for k in keys if is_result_key(k)]


def _values(known: Sequence[dict[str, Any]], key: str) -> list[str]:
    return [_canon(c.get(key, _MISSING)) for c in known]


def _all_varying(known: Sequence[dict[str, Any]]) -> list[str]:
    """Every result key whose value differs between the configs: what tells groups apart."""
    return [k for k in _result_keys(known) if len(set(_values(known, k))) > 1]


def varying_keys(configs: Sequence[dict[str, Any] | None]) -> list[str]:
    """Result keys whose value differs between runs, in config order: the runs table's columns.

    A key only some options of a group have (optimizer.rho) follows from the group's varying
    ``name`` and is left out: listing it too would only repeat the choice.
    """
    known = [c for c in configs if c is not None]
    if len(configs) < 2 or len(known) < 2:
        return []
    varying = _all_varying(known)
    return [k for k in varying if _follower_of(k, varying, known) is None]


def factor_keys(configs: Sequence[dict[str, Any] | None]) -> dict[str, list[str]]:
    """The factors, in config order, each with the varying keys folded into it.

    A key only some options of a group have (optimizer.rho) is folded into the group's varying
    ``name``. Any other key is folded into a factor its value is a function of, provided that
    factor has fewer levels than there are distinct configs: where each config has a level of
    its own (Optuna's continuous values) every key is a function of every other, and folding
    would hide what was searched. Keys are taken finest first (most levels, then ``name`` keys,
    then config order), so of two keys that determine each other the ``name`` key is the factor.
    """
    known = [c for c in configs if c is not None]
    if len(known) < 2:
        return {}
    varying = [k for k in _all_varying(known) if k != SEED_KEY]
    values = {k: _values(known, k) for k in varying}
    configs_seen = len(set(zip(*(values[k] for k in varying), strict=True)))
    owner: dict[str, str] = {}  # key -> the factor it is folded into (itself for a factor)
    for key in sorted(
        (k for k in varying if _follower_of(k, varying, known) is None),
        key=lambda k: (-len(set(values[k])), not k.endswith(".name"), varying.index(k)),
    ):
        owner[key] = next(
            (f for f in dict.fromkeys(owner.values())
             if len(set(values[f])) < configs_seen and _determines(values[f], values[key])),
            key,
        )  # fmt: skip
    for key in varying:
        name = _follower_of(key, varying, known)
        if name is not None:
            owner[key] = owner[name]
    return {f: [k for k in varying if k != f and owner[k] == f] for f in varying if owner[f] == f}


def _follower_of(key: str, varying: Sequence[str], known: Sequence[dict]) -> str | None:
    """The varying ``<group>.name`` that a key only some of its options have follows, if any
    (optimizer.rho: rmsprop's); a key with values of its own within one option is no follower."""
    name = f"{key.rsplit('.', 1)[0]}.name"
    if key == name or name not in varying or all(key in c for c in known):
        return None
    return name if _determines(_values(known, name), _values(known, key)) else None


def confounded_keys(
    folded: Mapping[str, Sequence[str]], configs: Sequence[dict[str, Any] | None]
) -> dict[str, list[str]]:
    """Per factor, the keys folded into it that every config has: they changed along with it
    (optimizer.lr set per optimizer), so its effect is theirs too. Followers (optimizer.rho) are
    part of the option and never count."""
    known = [c for c in configs if c is not None]
    return {
        f: [k for k in keys if all(k in c for c in known)] for f, keys in folded.items()
    }


def _determines(xs: Sequence[str], ys: Sequence[str]) -> bool:
    """Whether ys is a function of xs, pairwise over the runs."""
    seen: dict[str, str] = {}
    return all(seen.setdefault(x, y) == y for x, y in zip(xs, ys, strict=True))


def _level(value: Any) -> str:
    """A factor level as text: what the labels, tables and figures show."""
    if value is _MISSING:
        return "(unset)"
    return "null" if value is None else _fmt(value)


def _level_key(level: str) -> tuple[int, float, list[Any]]:
    """Numeric levels in numeric order (0.001 < 0.01), the rest naturally."""
    number = _to_float(level)
    return (0, number, []) if math.isfinite(number) else (1, 0.0, _natural_key(level))


def run_levels(runs: Sequence[Run], factors: Sequence[str]) -> list[dict[str, str] | None]:
    """Each run's level of each factor; None for a run whose config is unreadable."""
    return [
        None if run.config is None else {f: _level(run.config.get(f, _MISSING)) for f in factors}
        for run in runs
    ]


# ---------------------------------------------------------------------------- per run


def _rising_val_loss(metrics: dict[str, list[float]]) -> str | None:
    """The first stretch of OVERFIT_RISING_EPOCHS+ epochs with val_loss up and train_loss down."""
    epochs = metrics.get("epoch") or []
    val, train = metrics.get("val_loss") or [], metrics.get("train_loss") or []
    n = min(len(val), len(train))
    diverging = [val[i] > val[i - 1] and train[i] < train[i - 1] for i in range(1, n)]
    streak = 0
    for i, step in enumerate(diverging, start=1):  # step i: epoch index i-1 -> i
        streak = streak + 1 if step else 0
        if streak < OVERFIT_RISING_EPOCHS:
            continue
        end = i
        while end < len(diverging) and diverging[end]:
            end += 1
        start = i - streak
        first, last = (epochs[start], epochs[end]) if len(epochs) > end else (start + 1, end + 1)
        return (
            f"val_loss rose {val[start]:.4f} -> {val[end]:.4f} while train_loss fell "
            f"{train[start]:.4f} -> {train[end]:.4f} (epochs {first:g}-{last:g})"
        )
    return None


def overfit_reason(metrics: dict[str, list[float]], gap: float | None) -> str | None:
    """Why a run counts as overfitting (see OVERFIT_* constants), or None."""
    reasons = [_rising_val_loss(metrics)]
    if gap is not None and gap > OVERFIT_GAP:
        reasons.append(f"train_acc - val_acc = {gap:.4f} > {OVERFIT_GAP}")
    return "; ".join(r for r in reasons if r) or None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def build_rows(runs: Sequence[Run], varying: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """One row per run in report order (see _row_order), plus why each overfit run is flagged."""
    rows, reasons = [], {}
    for run in runs:
        s = run.summary
        train, val = _num(s.get("train_acc")), _num(s.get("val_acc"))
        gap = round(train - val, 10) if train is not None and val is not None else None
        reason = overfit_reason(run.metrics, gap)
        if reason:
            reasons[run.name] = reason
        best_epoch = _num(s.get("best_epoch"))
        row: dict[str, Any] = {"run": run.name}
        row.update({k: (run.config or {}).get(k) for k in varying})
        row.update(
            status=str(s.get("status") or "unknown"),
            train_acc=train,
            val_acc=val,
            test_acc=_num(s.get("test_acc")),
            best_val_acc=_num(s.get("best_val_acc")),
            best_epoch=int(best_epoch) if best_epoch is not None else None,
            gap=gap,
            wall_seconds=_num(s.get("wall_seconds")),
            overfit="yes" if reason else "no",
            error=s.get("error"),
        )
        rows.append(row)
    rows.sort(key=_row_order)
    return rows, reasons


def _row_order(row: dict[str, Any]) -> tuple[bool, bool, float, list[Any]]:
    """Best val_acc first; failed jobs last even when they logged some epochs first."""
    val = row["val_acc"]
    return row["status"] != "completed", val is None, -(val or 0.0), _natural_key(row["run"])


# ---------------------------------------------------------------------------- per group


def build_groups(
    runs: Sequence[Run], rows: Sequence[dict], varying: Sequence[str], factors: Sequence[str]
) -> list[Group]:
    """Runs whose configs differ only in the seed, best mean val_acc first; ``varying`` are the
    columns each group lists."""
    setting_keys = [k for k in varying if k != SEED_KEY]
    known = [run.config for run in runs if run.config is not None]
    distinct = [k for k in _all_varying(known) if k != SEED_KEY]
    members: dict[tuple, list[Run]] = {}
    for run in runs:
        key = (
            ("\0unreadable", run.name) if run.config is None
            else tuple(_canon(run.config.get(k, _MISSING)) for k in distinct)
        )  # fmt: skip
        members.setdefault(key, []).append(run)
    by_name = {row["run"]: row for row in rows}
    groups = [
        _group(group, [by_name[r.name] for r in group], setting_keys, factors)
        for group in members.values()
    ]
    return sorted(groups, key=_group_order)


def _group(
    runs: Sequence[Run], rows: Sequence[dict], setting_keys: Sequence[str], factors: Sequence[str]
) -> Group:
    config = runs[0].config
    levels = {} if config is None else {f: _level(config.get(f, _MISSING)) for f in factors}
    if config is None:
        label = f"{runs[0].name} (config unreadable)"
    else:
        label = " ".join(f"{f}={v}" for f, v in levels.items()) or NO_FACTOR
    done = [row for row in rows if row["status"] == "completed"]
    experiments = {(run.config or {}).get("experiment") for run in runs}
    return Group(
        label=label,
        levels=levels,
        setting={k: (config or {}).get(k) for k in setting_keys},
        config=dict(config or {}),
        runs=[run.name for run in runs],
        seeds=[(run.config or {}).get(SEED_KEY, run.summary.get("seed")) for run in runs],
        failed=len(rows) - len(done),
        values={m: [row[m] for row in done if row[m] is not None] for m in METRICS},
        experiment=next(iter(experiments)) if len(experiments) == 1 else None,
    )


def _group_order(group: Group) -> tuple[bool, float, list[Any]]:
    mean = group.stats["val_acc"].mean
    return mean is None, -(mean or 0.0), _natural_key(group.label)


def build_effects(
    runs: Sequence[Run], rows: Sequence[dict], confounded: Mapping[str, Sequence[str]]
) -> tuple[list[Effect], int]:
    """Matched comparisons of every pair of each factor's levels on test accuracy."""
    factors = list(confounded)
    by_name = {row["run"]: row for row in rows}
    obs = [
        Obs(levels, (run.config or {}).get(SEED_KEY), by_name[run.name]["test_acc"])
        for run, levels in zip(runs, run_levels(runs, factors), strict=True)
        if levels is not None
        and by_name[run.name]["status"] == "completed"
        and by_name[run.name]["test_acc"] is not None
    ]
    orders = {f: sorted({o.levels[f] for o in obs}, key=_level_key) for f in factors}
    return factor_effects(obs, orders, confounded)


def six_nine_counts(runs: Sequence[Run]) -> dict[str, list[float]]:
    """Aug level -> each run's test images of 6 predicted as 9 plus 9 predicted as 6."""
    counts: dict[str, list[float]] = {}
    for run in runs:
        if run.confusion is not None and run.config is not None:
            level = _level(run.config.get(SIX_NINE_FACTOR, _MISSING))
            counts.setdefault(level, []).append(float(run.confusion[6, 9] + run.confusion[9, 6]))
    return dict(sorted(counts.items(), key=lambda item: _level_key(item[0])))


# ---------------------------------------------------------------------------- formatting


def _fmt(value: Any, column: str = "") -> str:
    """Human formatting for report.md and the terminal (the csv files keep full precision)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if column in ACC_COLUMNS:
            return f"{value:.4f}"
        return f"{value:.1f}" if column == "wall_seconds" else f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _stat_cell(s: Stat, digits: int = 4) -> str:
    """mean ± std [95 % CI]; one run: its value."""
    if s.mean is None:
        return "-"
    if s.std is None or s.ci_low is None or s.ci_high is None:
        return f"{s.mean:.{digits}f}"
    d = digits
    return f"{s.mean:.{d}f} ± {s.std:.{d}f} [{s.ci_low:.{d}f}, {s.ci_high:.{d}f}]"


def _mean_ci_cell(s: Stat) -> str:
    """mean ± the 95 % CI's half-width; one run: its value."""
    if s.mean is None:
        return "-"
    if s.ci_high is None:
        return f"{s.mean:.4f}"
    return f"{s.mean:.4f} ± {s.ci_high - s.mean:.4f}"


def _diff_cells(c: Comparison) -> dict[str, str]:
    ci = "-" if c.ci_low is None or c.ci_high is None else f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
    return {"diff": f"{c.diff:+.4f}", "95 % CI": ci, "p": "-" if c.p is None else f"{c.p:.3g}"}


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Full precision, empty cells for None: for other tools, not for reading."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(row[c]) for c in columns] for row in rows)
    return buf.getvalue()


# ---------------------------------------------------------------------------- tables


def group_csv_rows(groups: Sequence[Group], keys: Sequence[str]) -> tuple[list[dict], list[str]]:
    """groups.csv: a row per group, its varying keys (join on them with runs.csv), the stats."""
    columns = ["group", *keys, "n", "failed", "seeds"]
    columns += [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci_low", "ci_high")]
    rows = []
    for g in groups:
        row: dict[str, Any] = {"group": g.label, **{k: g.setting.get(k) for k in keys}}
        row.update(n=g.n, failed=g.failed, seeds=" ".join(map(str, g.seeds)))
        for m in METRICS:
            s = g.stats[m]
            row.update({f"{m}_mean": s.mean, f"{m}_std": s.std,
                        f"{m}_ci_low": s.ci_low, f"{m}_ci_high": s.ci_high})  # fmt: skip
        rows.append(row)
    return rows, columns


def group_table(groups: Sequence[Group]) -> tuple[list[dict], list[str]]:
    """report.md's and the terminal's groups: one cell per metric, mean ± std [CI]."""
    columns = ["group", "n", "failed", "seeds", *METRICS]
    rows = [
        {"group": g.label, "n": g.n, "failed": g.failed, "seeds": " ".join(map(str, g.seeds)),
         **{m: _stat_cell(g.stats[m]) for m in METRICS}}
        for g in groups
    ]  # fmt: skip
    return rows, columns


EFFECT_CSV_COLUMNS = [
    "factor", "level", "vs", "strata", "balanced", "n_level", "n_vs", "mean_level", "mean_vs",
    "diff", "ci_low", "ci_high", "df", "t", "p", "verdict", "confounded_with",
]  # fmt: skip


def effect_csv_rows(effects: Sequence[Effect]) -> list[dict]:
    """effects.csv: every number behind a verdict, so it can be rechecked."""
    return [
        {"factor": e.factor, "level": e.level, "vs": e.vs, "strata": e.strata,
         "balanced": e.balanced, "n_level": e.result.n_a, "n_vs": e.result.n_b,
         "mean_level": e.result.mean_a, "mean_vs": e.result.mean_b, "diff": e.result.diff,
         "ci_low": e.result.ci_low, "ci_high": e.result.ci_high, "df": e.result.df,
         "t": e.result.t, "p": e.result.p, "verdict": e.verdict,
         "confounded_with": " ".join(e.confounded)}
        for e in effects
    ]  # fmt: skip


def effect_table(effects: Sequence[Effect]) -> tuple[list[dict], list[str]]:
    """report.md's and the terminal's effects, the difference with its interval and p."""
    columns = ["factor", "level", "vs", "strata", "n", "diff", "95 % CI", "p", "verdict",
               "confounded with"]  # fmt: skip
    rows = [
        {"factor": e.factor, "level": e.level, "vs": e.vs,
         "strata": f"{e.strata}" if e.balanced else f"{e.strata} (trimmed)",
         "n": f"{e.result.n_a} vs {e.result.n_b}", **_diff_cells(e.result), "verdict": e.verdict,
         "confounded with": ", ".join(e.confounded) or "-"}
        for e in effects
    ]  # fmt: skip
    return rows, columns


def study_table(rows: Sequence[StudyRow]) -> tuple[list[dict], list[str]]:
    """The study's numbers beside our group means ± 95 % CI half-width."""
    metrics = METRICS[:3]
    columns = ["experiment", "study run", "backend", "n"]
    columns += [f"{m} {who}" for m in metrics for who in ("study", "ours")]
    columns += ["deviations from the study", "study note"]
    table = []
    for r in rows:
        row: dict[str, Any] = {"experiment": r.experiment, "study run": r.study_run,
                               "backend": r.group.backend, "n": r.group.n}  # fmt: skip
        for m in metrics:
            reported = r.reported[m]
            row[f"{m} study"] = "-" if reported is None else f"{reported:.4f}"
            row[f"{m} ours"] = _mean_ci_cell(r.group.stats[m])
        row["deviations from the study"] = "; ".join(r.deviations) or "none"
        row["study note"] = r.note
        table.append(row)
    return table, columns


def conclusion_table(conclusions: Sequence[Conclusion]) -> tuple[list[dict], list[str]]:
    """A row per piece of evidence; the claim and its verdict on its first row."""
    columns = ["claim", "verdict", "evidence", "metric", "diff", "95 % CI", "p", "says", "note"]
    rows = []
    for c in conclusions:
        head = {"claim": c.name, "verdict": c.verdict}
        if not c.evidence:
            rows.append({**dict.fromkeys(columns, "-"), **head, "note": "no runs to compare"})
        for i, e in enumerate(c.evidence):
            rows.append({
                **(head if i == 0 else {"claim": "", "verdict": ""}), "evidence": e.what,
                "metric": c.metric, **_diff_cells(e.result), "says": e.verdict, "note": e.note,
            })  # fmt: skip
    return rows, columns


def six_nine_table(counts: Mapping[str, Sequence[float]]) -> tuple[list[dict], list[str]]:
    columns = [SIX_NINE_FACTOR, "runs", "6<->9 confusions"]
    rows = [
        {SIX_NINE_FACTOR: level, "runs": len(v), "6<->9 confusions": _stat_cell(describe(v), 1)}
        for level, v in counts.items()
    ]
    return rows, columns


# ---------------------------------------------------------------------------- report.md


def _cell(value: Any, column: str) -> str:
    """Table cell text; an error keeps its last line (a traceback's exception), cut to fit."""
    text = _fmt(value, column)
    if column == "error" and value and text.strip():
        text = text.strip().splitlines()[-1]
        text = text if len(text) <= 60 else text[:57] + "..."
    return text.replace("\n", " ")


def _md_cell(value: Any, column: str) -> str:
    return _cell(value, column).replace("|", "\\|")


def _numeric(rows: Sequence[dict], columns: Sequence[str]) -> set[str]:
    """Columns to right-align."""
    return {c for c in columns if any(isinstance(r[c], int | float) for r in rows)}


def _markdown_lines(rows: Sequence[dict], columns: Sequence[str]) -> Iterator[str]:
    numeric = _numeric(rows, columns)
    yield "| " + " | ".join(columns) + " |"
    yield "|" + "|".join("---:" if c in numeric else "---" for c in columns) + "|"
    for row in rows:
        yield "| " + " | ".join(_md_cell(row[c], c) for c in columns) + " |"


def _summary_lines(report: Report) -> list[str]:
    rows, failed = report.rows, report.failed
    summary = f"{len(rows)} run(s): {len(rows) - len(failed)} completed, {len(failed)} failed."
    best = rows[0]
    if best["status"] == "completed" and best["val_acc"] is not None:
        summary += f" Best: `{best['run']}` (val_acc {best['val_acc']:.4f})."
    lines = [summary]
    if report.job_counts is not None:
        lines += ["", job_counts_line(report.job_counts)]
    return lines


def job_counts_line(counts: Mapping[str, int]) -> str:
    return (
        f"jobs: {counts.get('skipped', 0)} skipped, {counts.get('resumed', 0)} resumed, "
        f"{counts.get('started', 0)} started"
    )


def _factor_lines(report: Report) -> list[str]:
    ignored = [f"{root}.*" for root in sorted(NON_RESULT_ROOTS)] + sorted(NON_RESULT_KEYS)
    lines = [
        "## Factors",
        "",
        "Read from the resolved configs (`.hydra/config.yaml`), not from override strings. Never "
        f"factors: keys that change no result ({', '.join(ignored)}) and `{SEED_KEY}`, the "
        "replicate axis. A key "
        "whose value is a function of another varying key's is folded into it.",
        "",
    ]
    if not report.factors:
        return [*lines, "Nothing varied but the seed." if len(report.rows) > 1 else "One run."]
    levels = {f: sorted({g.levels[f] for g in report.groups if f in g.levels}, key=_level_key)
              for f in report.factors}  # fmt: skip
    for f in report.factors:
        also = report.folded.get(f)
        sets = f" (sets {', '.join(also)})" if also else ""
        lines.append(f"- `{f}`: {', '.join(levels[f])}{sets}")
    return lines


def _group_lines(report: Report) -> list[str]:
    rows, columns = group_table(report.groups)
    return [
        "## Groups",
        "",
        f"Runs whose resolved configs differ only in `{SEED_KEY}`. Each cell: mean ± sample std "
        "(ddof=1) [95 % confidence interval of the mean, mean ± t(0.975, n-1)·std/√n] over the "
        "completed runs; a single run shows its value. gap = train_acc - val_acc. Also in "
        "groups.csv.",
        "",
        *_markdown_lines(rows, columns),
    ]


EFFECTS_RULE = (
    "For each factor, every pair of its levels on test accuracy: diff = mean(level) - mean(vs), "
    "95 % CI with Welch-Satterthwaite df, p from Welch's t-test. Only matched runs are compared: "
    "runs equal on every other factor (a stratum), in the strata holding both levels. Those runs "
    "are pooled when the strata weigh the same in both levels (a balanced design); otherwise "
    "each stratum keeps its lowest-seed min(n_level, n_vs) runs of each level (\"trimmed\"). "
    "better/worse: p < 0.05 and the CI excludes 0. A factor's effect includes the keys that "
    "changed along with it (confounded with; see Factors)."
)


def _effect_lines(report: Report) -> list[str]:
    lines = ["## Effects on test accuracy", "", EFFECTS_RULE, ""]
    if not report.effects:
        lines.append("No matched pair of levels." if report.factors else "Nothing varied.")
    else:
        rows, columns = effect_table(report.effects)
        lines += _markdown_lines(rows, columns)
    if report.unmatched:
        lines += ["", f"{report.unmatched} level pair(s) have no matched runs (they differ in "
                      "other factors too) and are not compared."]  # fmt: skip
    return lines


def _study_lines(report: Report) -> list[str]:
    if not report.study:
        return []
    rows, columns = study_table(report.study)
    claims, claim_columns = conclusion_table(report.conclusions)
    lines = [
        "## Study vs measured",
        "",
        "The study's reported accuracies (../shared/SEED.md, `study_results.yaml`) beside our "
        "group means ± the 95 % CI half-width; deviations name the study's hyperparameters our "
        "runs did not use.",
        "",
        *_markdown_lines(rows, columns),
        "",
        "### The study's conclusions",
        "",
        "Welch's test per piece of evidence: confirmed when the difference is in the claimed "
        "direction with p < 0.05, refuted when opposite with p < 0.05, else inconclusive. A "
        "tested matched effect decides alone; otherwise a claim is confirmed (refuted) when some "
        "evidence confirms (refutes) it and none says the opposite.",
        "",
    ]
    lines += [f"- **{c.name}** ({c.claim}): **{c.verdict}**" for c in report.conclusions]
    return [*lines, "", *_markdown_lines(claims, claim_columns)]


def _six_nine_lines(counts: Mapping[str, Sequence[float]]) -> list[str]:
    if not counts:
        return []
    rows, columns = six_nine_table(counts)
    lines = [
        "## 6<->9 confusions",
        "",
        "Per run, test images of a 6 predicted as 9 plus of a 9 predicted as 6 (confusion.csv), "
        f"by {SIX_NINE_FACTOR}, pooled over the other factors: mean ± std [95 % CI].",
        "",
        *_markdown_lines(rows, columns),
    ]
    if "flip" in counts and "shift_rotate" in counts:
        c = welch(counts["flip"], counts["shift_rotate"])
        cells = _diff_cells(c)
        verdict = effect_verdict(c)
        verdict = {"better": "flip confuses more", "worse": "flip confuses less"}.get(
            verdict, verdict
        )
        lines += ["", f"flip - shift_rotate (Welch): {cells['diff']} {cells['95 % CI']}, "
                      f"p = {cells['p']}: {verdict}."]  # fmt: skip
    return lines


def _failed_lines(failed: Sequence[dict]) -> list[str]:
    lines = ["## Failed jobs", ""]
    for row in failed:
        error = str(row["error"] or "no error message").strip()
        if "\n" in error:
            lines += [
                f"- `{row['run']}` ({row['status']}):",
                "",
                "  ```",
                *(f"  {line}" for line in error.splitlines()),
                "  ```",
            ]
        else:
            lines.append(f"- `{row['run']}` ({row['status']}): {error}")
    return lines + ([] if failed else ["None."])


def _overfit_lines(reasons: Mapping[str, str]) -> list[str]:
    return [
        "## Overfitting",
        "",
        f"Flagged when val_loss rises for {OVERFIT_RISING_EPOCHS}+ consecutive epochs while "
        f"train_loss falls, or when train_acc - val_acc > {OVERFIT_GAP}.",
        "",
        *([f"- `{run}`: {reason}" for run, reason in reasons.items()] or ["None flagged."]),
    ]


def _plot_lines(paths: Mapping[str, Path]) -> list[str]:
    lines = [
        "## Plots",
        "",
        f"Learning curves: a line per group, the mean over its runs per epoch; the band is the "
        f"{BAND}.",
        "",
        "![learning curves](curves.png)",
        "",
        "Ablation: per level of each factor, pooled over the other factors, the mean test "
        "accuracy with its 95 % CI (error bars) and each run as a dot.",
        "",
        "![ablation](ablation.png)",
    ]
    if "parallel.png" in paths:
        lines += ["", "Parallel coordinates: each run's factor levels and test accuracy.", "",
                  "![parallel coordinates](parallel.png)"]  # fmt: skip
    return lines


def report_markdown(report: Report) -> str:
    sections = [
        ["# mnistlab report", "", *_summary_lines(report), "",
         *_markdown_lines(report.rows, report.columns)],
        _factor_lines(report),
        _group_lines(report),
        _effect_lines(report),
        _study_lines(report),
        _six_nine_lines(report.six_nine),
        _failed_lines(report.failed),
        _overfit_lines(report.reasons),
        _plot_lines(report.paths),
    ]  # fmt: skip
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"


# ---------------------------------------------------------------------------- figures data


def _ablation_data(
    runs: Sequence[Run], rows: Sequence[dict], factors: Sequence[str]
) -> dict[str, list[tuple[str, list[float]]]]:
    """Factor -> [(level, test accuracies of completed runs at that level)], levels sorted."""
    by_name = {row["run"]: row for row in rows}
    accs = [
        by_name[r.name]["test_acc"] if by_name[r.name]["status"] == "completed" else None
        for r in runs
    ]
    if not factors:
        name = runs[0].name if len(runs) == 1 else f"all {len(runs)} runs"
        return {NO_FACTOR: [(name, [a for a in accs if a is not None])]}
    data: dict[str, list[tuple[str, list[float]]]] = {}
    per_run = run_levels(runs, factors)
    for factor in factors:
        by_level: dict[str, list[float]] = {}
        for levels, acc in zip(per_run, accs, strict=True):
            level = "(config unreadable)" if levels is None else levels[factor]
            by_level.setdefault(level, []).extend([] if acc is None else [acc])
        data[factor] = sorted(by_level.items(), key=lambda item: _level_key(item[0]))
    return data


def _curve_series(groups: Sequence[Group], runs: Sequence[Run]) -> list[tuple[str, list]]:
    """(legend label, metrics of the group's completed runs) per group."""
    by_name = {run.name: run for run in runs}
    series = []
    for g in groups:
        done = [by_name[n] for n in g.runs if by_name[n].summary.get("status") == "completed"]
        series.append((f"{g.label} (n={len(done)})", [run.metrics for run in done]))
    return series


def _parallel_data(
    runs: Sequence[Run], rows: Sequence[dict], factors: Sequence[str]
) -> tuple[dict[str, list[str]], list[float]]:
    """Each completed run's factor levels and its test accuracy."""
    by_name = {row["run"]: row for row in rows}
    kept = [
        (levels, by_name[run.name]["test_acc"])
        for run, levels in zip(runs, run_levels(runs, factors), strict=True)
        if levels is not None and by_name[run.name]["test_acc"] is not None
        and by_name[run.name]["status"] == "completed"
    ]  # fmt: skip
    return {f: [levels[f] for levels, _ in kept] for f in factors}, [acc for _, acc in kept]


# ---------------------------------------------------------------------------- terminal


def print_table(rows: Sequence[dict], columns: Sequence[str], title: str) -> None:
    """A rich table; failed runs red and overfit ones yellow where rows have those columns."""
    table = Table(title=title)
    numeric = _numeric(rows, columns)
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left", overflow="fold")
    for row in rows:
        failed = row.get("status", "completed") != "completed"
        style = "red" if failed else "yellow" if row.get("overfit") == "yes" else None
        table.add_row(*(_cell(row[c], c) for c in columns), style=style)
    console = Console()
    if not console.is_terminal:  # a log file: don't squeeze 15 columns into 80 characters
        natural = Measurement.get(console, console.options.update_width(1000), table).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)


def print_report(report: Report, title: str) -> None:
    """Every table of report.md that has rows, in the same order."""
    print_table(report.rows, report.columns, title=title)
    if report.job_counts is not None:
        print(job_counts_line(report.job_counts))
    print_table(*group_table(report.groups), title="groups (seeds pooled; mean ± std [95 % CI])")
    if report.effects:
        print_table(*effect_table(report.effects), title="effects on test accuracy (matched)")
    if report.study:
        print_table(*study_table(report.study), title="study vs measured (mean ± 95 % CI)")
        print_table(*conclusion_table(report.conclusions), title="the study's conclusions")
    if report.six_nine:
        print_table(*six_nine_table(report.six_nine), title="6<->9 confusions per aug level")


# ---------------------------------------------------------------------------- entry points


def write_report(
    dirs: Sequence[Path],
    out_dir: Path,
    show: bool = True,
    *,
    job_counts: Mapping[str, int] | None = None,
) -> Report:
    """Read every run under ``dirs`` and write runs.csv, groups.csv, effects.csv, report.md,
    curves.png, ablation.png and, when 3+ factors vary, parallel.png.

    ``job_counts`` ({"skipped": n, "resumed": n, "started": n}, from the sweep) adds a line.
    Raises NoRunsError (a SystemExit with a one-line message) when there is no summary.json.
    """
    dirs = [Path(d) for d in dirs]
    run_dirs = find_runs(dirs)
    if not run_dirs:
        raise NoRunsError(
            f"error: no runs (summary.json) found under {', '.join(str(d) for d in dirs)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [load_run(p, out_dir) for p in run_dirs]
    report = analyse(runs, out_dir, job_counts)
    write_files(report, runs)
    if show:
        print_report(report, title=f"mnistlab report: {out_dir}")
    return report


def analyse(runs: Sequence[Run], out_dir: Path, job_counts: Mapping[str, int] | None) -> Report:
    """Everything the report says about ``runs``; ``paths`` are where it goes in ``out_dir``."""
    configs = [run.config for run in runs]
    varying = varying_keys(configs)
    folded = factor_keys(configs)
    factors = list(folded)
    rows, reasons = build_rows(runs, varying)
    groups = build_groups(runs, rows, varying, factors)
    effects, unmatched = build_effects(runs, rows, confounded_keys(folded, configs))
    study = load_study()
    names = ["runs.csv", "groups.csv", "effects.csv", "report.md", "curves.png", "ablation.png"]
    if len(factors) >= PARALLEL_MIN_FACTORS:
        names.append("parallel.png")
    report = Report(
        rows=rows, varying=varying, paths={n: out_dir / n for n in names},
        columns=["run", *varying, *RESULT_COLUMNS], factors=factors, reasons=reasons,
        folded={f: keys for f, keys in folded.items() if keys}, groups=groups, effects=effects,
        unmatched=unmatched, study=study_rows(groups, study),
        conclusions=check_conclusions(groups, effects, study), six_nine=six_nine_counts(runs),
        job_counts=dict(job_counts) if job_counts is not None else None,
    )  # fmt: skip
    return report


def write_files(report: Report, runs: Sequence[Run]) -> None:
    """Each file atomically: a reader (or a crash) never sees half a report."""
    paths, keys = report.paths, [k for k in report.varying if k != SEED_KEY]
    write_atomically(paths["runs.csv"], to_csv(report.rows, report.columns))
    write_atomically(paths["groups.csv"], to_csv(*group_csv_rows(report.groups, keys)))
    effects = effect_csv_rows(report.effects)
    write_atomically(paths["effects.csv"], to_csv(effects, EFFECT_CSV_COLUMNS))
    write_atomically(paths["report.md"], report_markdown(report))
    plot_curves(_curve_series(report.groups, runs), paths["curves.png"])
    plot_ablation(_ablation_data(runs, report.rows, report.factors), paths["ablation.png"])
    if "parallel.png" in paths:
        plot_parallel(*_parallel_data(runs, report.rows, report.factors), paths["parallel.png"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.report",
        description="Tabulate and plot finished runs (any directory holding summary.json).",
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="run dir, sweep dir or outputs/; searched recursively",
    )
    parser.add_argument("--out", type=Path, help="where to write the report (default: first DIR)")
    parser.add_argument("--no-show", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    report = write_report(args.dirs, args.out or args.dirs[0], show=not args.no_show)
    if not args.no_show:
        print(f"wrote {', '.join(str(p) for p in report.paths.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
