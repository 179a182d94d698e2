"""Summarise finished runs and sweeps: a table (runs.csv, report.md, terminal), curves, ablation.

The framework calls :func:`write_report` at the end of every multirun with the sweep dir; by
hand: ``python -m mnistlab.report DIR [DIR...] [--out OUT]``. A run is any directory holding a
``summary.json``; failed jobs (no metrics, null accuracies) are listed, never fatal.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from mnistlab.atomic import write_atomically
from mnistlab.report_plots import plot_ablation, plot_curves

# A run overfits when val_loss rises for this many consecutive epochs while train_loss falls...
OVERFIT_RISING_EPOCHS = 3
# ...or when train_acc - val_acc exceeds this. Train accuracy is measured with dropout and
# augmentation on, so a negative gap is normal and never counts.
OVERFIT_GAP = 0.05

IGNORED_ROOTS = frozenset({"paths", "logger", "hydra"})  # differ per job without meaning anything
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
    overrides: list[str]
    metrics: dict[str, list[float]]  # metrics.csv column -> values per epoch

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or self.path.name


@dataclass
class Report:
    """What was written, so the caller can act on failures without re-reading files."""

    rows: list[dict[str, Any]]  # keys: columns, in order; sorted by val_acc, failed last
    varying: list[str]  # config keys that differ between runs (the param columns)
    paths: dict[str, Path]  # file name -> path written
    columns: list[str] = field(default_factory=list)
    factors: list[str] = field(default_factory=list)  # the ablation subplots
    reasons: dict[str, str] = field(default_factory=dict)  # run -> why it was flagged overfit

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


def _run_name(path: Path, out_dir: Path) -> str:
    out = out_dir.resolve()
    return path.name if path == out else Path(os.path.relpath(path, out)).as_posix()


def load_run(path: Path, out_dir: Path) -> Run:
    summary = _read_summary(path / "summary.json")
    config = _read_yaml(path / ".hydra" / "config.yaml")
    overrides = _read_yaml(path / ".hydra" / "overrides.yaml")
    if not isinstance(overrides, list):
        overrides = summary.get("overrides") or []
    return Run(
        path=path,
        name=_run_name(path, out_dir),
        summary=summary,
        config=flatten(config) if isinstance(config, dict) else None,
        overrides=[str(o) for o in overrides],
        metrics=read_metrics(path / "metrics.csv"),
    )


# ---------------------------------------------------------------------------- analysis


def _ignored(key: str) -> bool:
    return key.split(".", 1)[0] in IGNORED_ROOTS


def _canon(value: Any) -> str:
    return "\0missing" if value is _MISSING else json.dumps(value, sort_keys=True, default=str)


def varying_keys(configs: Sequence[dict[str, Any] | None]) -> list[str]:
    """Flattened config keys whose value differs between runs, in config order."""
    known = [c for c in configs if c is not None]
    if len(configs) < 2 or len(known) < 2:
        return []
    keys = list(dict.fromkeys(k for c in known for k in c))
    roots = list(dict.fromkeys(k.split(".", 1)[0] for k in keys))
    keys.sort(key=lambda k: roots.index(k.split(".", 1)[0]))  # a late aug.p stays by aug.name
    varying = [
        k for k in keys
        if not _ignored(k) and len({_canon(c.get(k, _MISSING)) for c in known}) > 1
    ]  # fmt: skip
    # a key that only some options of a group have (optimizer.rho) follows from the group's
    # varying `name`; listing it too would only repeat the choice
    chosen = {k.rsplit(".", 1)[0] for k in varying if k.endswith(".name")}
    return [
        k for k in varying
        if k.endswith(".name") or k.rsplit(".", 1)[0] not in chosen or all(k in c for c in known)
    ]  # fmt: skip


def parse_override(override: str) -> tuple[str, str]:
    """Split "+optimizer=adam" -> ("optimizer", "adam"); "~aug" -> ("aug", "(deleted)")."""
    key, sep, value = override.partition("=")
    return key.lstrip("+~"), value if sep else "(deleted)"


def ablation_levels(runs: Sequence[Run], varying: Sequence[str]) -> dict[str, list[str]]:
    """Factor -> level of each run. Override keys read best ("optimizer", not 6 optimizer.*
    columns), so they win; the varying config keys are the fallback."""
    parsed = [dict(parse_override(o) for o in run.overrides) for run in runs]
    keys = [k for k in dict.fromkeys(k for p in parsed for k in p) if not _ignored(k)]
    levels = {k: [p.get(k, "(default)") for p in parsed] for k in keys}
    by_override = {k: v for k, v in levels.items() if len(set(v)) > 1}
    if by_override:
        return by_override
    return {
        k: [_fmt(run.config.get(k)) if run.config is not None else "(missing)" for run in runs]
        for k in varying
    }


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


# ---------------------------------------------------------------------------- writing


def _fmt(value: Any, column: str = "") -> str:
    """Human formatting for report.md and the terminal (runs.csv keeps full precision)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if column in ACC_COLUMNS:
            return f"{value:.4f}"
        return f"{value:.1f}" if column == "wall_seconds" else f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def runs_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_cell(row[c]) for c in columns] for row in rows)
    return buf.getvalue()


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


def report_markdown(rows: Sequence[dict], columns: Sequence[str], reasons: dict[str, str]) -> str:
    failed = [r for r in rows if r["status"] != "completed"]
    lines = ["# mnistlab report", ""]
    summary = f"{len(rows)} run(s): {len(rows) - len(failed)} completed, {len(failed)} failed."
    best = rows[0]
    if best["status"] == "completed" and best["val_acc"] is not None:
        summary += f" Best: `{best['run']}` (val_acc {best['val_acc']:.4f})."
    lines += [summary, "", *_markdown_lines(rows, columns), "", "## Failed jobs", ""]
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
    lines += [] if failed else ["None."]
    lines += [
        "",
        "## Overfitting",
        "",
        f"Flagged when val_loss rises for {OVERFIT_RISING_EPOCHS}+ consecutive epochs while "
        f"train_loss falls, or when train_acc - val_acc > {OVERFIT_GAP}.",
        "",
    ]
    lines += [f"- `{run}`: {reason}" for run, reason in reasons.items()] or ["None flagged."]
    lines += ["", "## Plots", "", "![learning curves](curves.png)", "", "![ablation](ablation.png)"]
    return "\n".join(lines) + "\n"


def _ablation_data(runs: Sequence[Run], levels: dict[str, list[str]]) -> dict[str, list]:
    """Factor -> [(level, test accuracies of completed runs at that level)], levels sorted."""
    accs = [_num(run.summary.get("test_acc")) for run in runs]
    if not levels:
        done = [a for a in accs if a is not None]
        name = runs[0].label if len(runs) == 1 else f"all {len(runs)} runs"
        return {NO_FACTOR: [(name, done)]}
    data: dict[str, list] = {}
    for factor, per_run in levels.items():
        by_level: dict[str, list[float]] = {level: [] for level in per_run}
        for level, acc in zip(per_run, accs, strict=True):
            if acc is not None:
                by_level[level].append(acc)
        data[factor] = sorted(by_level.items(), key=lambda item: _level_key(item[0]))
    return data


def _level_key(level: str) -> tuple[int, float, list[Any]]:
    """Numeric levels in numeric order (0.001 < 0.01), the rest naturally."""
    number = _to_float(level)
    return (0, number, []) if math.isfinite(number) else (1, 0.0, _natural_key(level))


def print_table(rows: Sequence[dict], columns: Sequence[str], title: str) -> None:
    table = Table(title=title)
    numeric = _numeric(rows, columns)
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left", overflow="fold")
    for row in rows:
        failed, overfit = row["status"] != "completed", row["overfit"] == "yes"
        style = "red" if failed else "yellow" if overfit else None
        table.add_row(*(_cell(row[c], c) for c in columns), style=style)
    console = Console()
    if not console.is_terminal:  # a log file: don't squeeze 15 columns into 80 characters
        natural = Measurement.get(console, console.options.update_width(1000), table).maximum
        console = Console(width=max(console.width, natural))
    console.print(table)


def write_report(dirs: Sequence[Path], out_dir: Path, show: bool = True) -> Report:
    """Read every run under ``dirs`` and write runs.csv, report.md, curves.png, ablation.png.

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
    varying = varying_keys([run.config for run in runs])
    columns = ["run", *varying, *RESULT_COLUMNS]
    rows, reasons = build_rows(runs, varying)
    levels = ablation_levels(runs, varying) if len(runs) > 1 else {}

    paths = {
        name: out_dir / name for name in ("runs.csv", "report.md", "curves.png", "ablation.png")
    }
    write_atomically(paths["runs.csv"], runs_csv(rows, columns))
    write_atomically(paths["report.md"], report_markdown(rows, columns, reasons))
    plot_curves([(run.label, run.metrics) for run in runs], paths["curves.png"])
    plot_ablation(_ablation_data(runs, levels), paths["ablation.png"])
    if show:
        print_table(rows, columns, title=f"mnistlab report: {out_dir}")
    return Report(
        rows=rows,
        varying=varying,
        paths=paths,
        columns=columns,
        factors=list(levels),
        reasons=reasons,
    )


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
