"""What the runs measured, for mnistlab.report: a row per run (with the overfitting rule), groups
of runs that differ only in the seed, matched effects of each factor, the sections that plug-ins
add, and the :class:`Report` that holds them all, so the writers and callers read one object."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistlab.report.anova import Factorial, factorial_analysis
from mnistlab.report.factors import (
    NO_FACTOR,
    SEED_KEY,
    all_varying,
    comparable,
    level_key,
    level_of,
    run_levels,
)
from mnistlab.report.runs import TABLE_EXPERIMENT, Run, natural_key
from mnistlab.report.stats import (
    METRICS,
    Effect,
    Group,
    Obs,
    factor_effects,
)

# A run overfits when val_loss rises for this many consecutive epochs while train_loss falls...
OVERFIT_RISING_EPOCHS = 3
# ...or when train_acc - val_acc exceeds this. Train accuracy is measured with dropout and
# augmentation on, so a negative gap is normal and never counts.
OVERFIT_GAP = 0.05
PRUNED = "pruned"  # summary.json's status of a run an Optuna search's pruner stopped
RESULT_COLUMNS = (
    "status", "epochs", "train_acc", "val_acc", "test_acc", "best_val_acc", "best_epoch", "gap",
    "wall_seconds", "overfit", "error",
)  # fmt: skip


@dataclass
class Section:
    """A part of the report that a plug-in adds (`mnistlab.report.hooks`): its report.md lines
    and the tables it prints in the terminal, each (rows, columns, title)."""

    markdown: list[str]
    tables: list[tuple[list[dict], list[str], str]] = field(default_factory=list)
    # experiment -> a reference test accuracy that a sweep of named experiments' figure marks
    # beside ours (the study's own figure), named by marks_label
    marks: dict[str, float] = field(default_factory=dict)
    marks_label: str = ""


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
    # factor -> the keys that changed along with it (its effect is theirs too)
    confounded: dict[str, list[str]] = field(default_factory=dict)
    factorial: Factorial | None = None  # the ANOVA of test_acc, when the runs are a factorial
    sections: list[Section] = field(default_factory=list)  # from the plug-ins, in their order
    job_counts: dict[str, int] | None = None
    provenance: list[str] = field(default_factory=list)  # report.md's "Provenance" lines

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] not in ("completed", PRUNED)]

    @property
    def pruned(self) -> list[dict[str, Any]]:
        """Runs an Optuna search's pruner stopped: answers, not failures."""
        return [r for r in self.rows if r["status"] == PRUNED]


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
    """A summary number, or None for a missing, non-numeric or NaN one (a failed job)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def build_rows(runs: Sequence[Run], varying: Sequence[str]) -> tuple[list[dict], dict[str, str]]:
    """One row per run in report order (see _row_order), plus why each overfit run is flagged."""
    rows, reasons = [], {}
    named = experiment_column(runs)
    for run in runs:
        s = run.summary
        train, val = _num(s.get("train_acc")), _num(s.get("val_acc"))
        gap = round(train - val, 10) if train is not None and val is not None else None
        # a pruned run stopped early on purpose: its short curve says nothing of overfitting
        reason = overfit_reason(run.metrics, gap) if s.get("status") != PRUNED else ""
        if reason:
            reasons[run.name] = reason
        best_epoch, epochs = _num(s.get("best_epoch")), _num(s.get("epochs_completed"))
        row: dict[str, Any] = {"run": run.name}
        if named:
            row[TABLE_EXPERIMENT] = (run.config or {}).get(TABLE_EXPERIMENT)
        row.update({k: (run.config or {}).get(k) for k in varying})
        row.update(
            status=str(s.get("status") or "unknown"),
            epochs=int(epochs) if epochs is not None else None,  # a full-length run's max_epochs
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


def experiment_column(runs: Sequence[Run]) -> bool:
    """Whether runs.csv names each run's experiment: when any ran as one (`experiment=`), so that
    a report rebuilt from the table (runs.runs_from_table) still knows them."""
    return any((run.config or {}).get(TABLE_EXPERIMENT) for run in runs)


def _row_order(row: dict[str, Any]) -> tuple[bool, bool, float, list[Any]]:
    """Best val_acc first; failed jobs last even when they logged some epochs first."""
    val = row["val_acc"]
    return row["status"] != "completed", val is None, -(val or 0.0), natural_key(row["run"])


def build_groups(
    runs: Sequence[Run], rows: Sequence[dict], varying: Sequence[str], factors: Sequence[str]
) -> list[Group]:
    """Runs whose configs differ only in the seed, best mean val_acc first; ``varying`` are the
    columns each group lists."""
    setting_keys = [k for k in varying if k != SEED_KEY]
    known = [run.config for run in runs if run.config is not None]
    distinct = [k for k in all_varying(known) if k != SEED_KEY]
    members: dict[tuple, list[Run]] = {}
    for run in runs:
        key = ("\0unreadable", run.name) if run.config is None else comparable(run.config, distinct)
        members.setdefault(key, []).append(run)
    by_name = {row["run"]: row for row in rows}
    groups = [
        _group(group, [by_name[r.name] for r in group], setting_keys, factors)
        for group in members.values()
    ]
    if named_experiments(groups):
        _label_by_experiment(groups, factors)
    return sorted(groups, key=_group_order)


def named_experiments(groups: Sequence[Group]) -> bool:
    """Whether the runs are named experiments (`experiment=`), two or more: a sweep of recipes
    that differ in whatever each sets, read per experiment rather than per factor."""
    names = {g.experiment for g in groups}
    return None not in names and len(names) >= 2


def _label_by_experiment(groups: Sequence[Group], factors: Sequence[str]) -> None:
    """``tf_run3 · keras``: the experiment's name, then the levels that tell its groups apart."""
    for g in groups:
        same = [o for o in groups if o.experiment == g.experiment]
        apart = [f for f in factors if len({o.levels.get(f) for o in same}) > 1]
        name = str(g.experiment).rsplit("/", 1)[-1]
        g.label = " · ".join([name, *(g.levels[f] if f == "backend.name" else
                                       f"{f}={g.levels[f]}" for f in apart)])  # fmt: skip


def _group(
    runs: Sequence[Run], rows: Sequence[dict], setting_keys: Sequence[str], factors: Sequence[str]
) -> Group:
    config = runs[0].config
    levels = {} if config is None else {f: level_of(config, f) for f in factors}
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
        failed=sum(row["status"] not in ("completed", PRUNED) for row in rows),
        pruned=sum(row["status"] == PRUNED for row in rows),
        values={m: [row[m] for row in done if row[m] is not None] for m in METRICS},
        experiment=next(iter(experiments)) if len(experiments) == 1 else None,
    )


def _group_order(group: Group) -> tuple[bool, float, list[Any]]:
    mean = group.stats["val_acc"].mean
    return mean is None, -(mean or 0.0), natural_key(group.label)


def completed_obs(
    runs: Sequence[Run], rows: Sequence[dict], factors: Sequence[str], metric: str = "test_acc"
) -> list[Obs]:
    """Each completed run's factor levels, seed and ``metric``, for the effects and the ANOVA."""
    by_name = {row["run"]: row for row in rows}
    return [
        Obs(levels, (run.config or {}).get(SEED_KEY), by_name[run.name][metric])
        for run, levels in zip(runs, run_levels(runs, factors), strict=True)
        if levels is not None
        and by_name[run.name]["status"] == "completed"
        and by_name[run.name][metric] is not None
    ]


def level_orders(obs: Sequence[Obs], factors: Sequence[str]) -> dict[str, list[str]]:
    """Each factor's levels among ``obs``, in report order (numbers by value)."""
    return {f: sorted({o.levels[f] for o in obs}, key=level_key) for f in factors}


def build_effects(
    runs: Sequence[Run], rows: Sequence[dict], confounded: Mapping[str, Sequence[str]]
) -> tuple[list[Effect], int]:
    """Matched comparisons of every pair of each factor's levels on test accuracy."""
    obs = completed_obs(runs, rows, list(confounded))
    return factor_effects(obs, level_orders(obs, list(confounded)), confounded)


def build_factorial(
    runs: Sequence[Run], rows: Sequence[dict], factors: Sequence[str], metric: str = "test_acc"
) -> Factorial | None:
    """The ANOVA of ``metric`` when the runs form a full factorial (mnistlab.report.anova)."""
    obs = completed_obs(runs, rows, factors, metric)
    return factorial_analysis(obs, level_orders(obs, factors), metric)
