"""The report's tables, for mnistlab.report: each built once as rows and columns, then written
as CSV (full precision, for other tools), as markdown (report.md) or as rich tables (the
terminal), so the three never disagree."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from mnistlab.report.anova import Factorial
from mnistlab.report.factors import value_text
from mnistlab.report.results import Report
from mnistlab.report.stats import (
    METRICS,
    Comparison,
    Effect,
    Group,
    Stat,
)

ACC_COLUMNS = frozenset({"train_acc", "val_acc", "test_acc", "best_val_acc", "gap"})


def _fmt(value: Any, column: str = "") -> str:
    """Human formatting for report.md and the terminal (the csv files keep full precision)."""
    if value is None:
        return "-"
    if isinstance(value, float) and column in ACC_COLUMNS:
        return f"{value:.4f}"
    if isinstance(value, float) and column == "wall_seconds":
        return f"{value:.1f}"
    return value_text(value)


def stat_cell(s: Stat, digits: int = 4) -> str:
    """mean ± std [95 % CI]; one run: its value."""
    if s.mean is None:
        return "-"
    if s.std is None or s.ci_low is None or s.ci_high is None:
        return f"{s.mean:.{digits}f}"
    d = digits
    return f"{s.mean:.{d}f} ± {s.std:.{d}f} [{s.ci_low:.{d}f}, {s.ci_high:.{d}f}]"


def mean_ci_cell(s: Stat) -> str:
    """mean ± the 95 % CI's half-width; one run: its value."""
    if s.mean is None:
        return "-"
    if s.ci_high is None:
        return f"{s.mean:.4f}"
    return f"{s.mean:.4f} ± {s.ci_high - s.mean:.4f}"


def diff_cells(c: Comparison) -> dict[str, str]:
    """A comparison's diff, 95 % CI and p as every table of comparisons shows them."""
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
         **{m: stat_cell(g.stats[m]) for m in METRICS}}
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
         "n": f"{e.result.n_a} vs {e.result.n_b}", **diff_cells(e.result), "verdict": e.verdict,
         "confounded with": ", ".join(e.confounded) or "-"}
        for e in effects
    ]  # fmt: skip
    return rows, columns


def anova_table(f: Factorial) -> tuple[list[dict], list[str]]:
    """report.md's ANOVA: a row per term, its F test and the share of variance it explains."""
    columns = ["term", "df", "F", "p", "partial η²", "verdict"]
    rows = [
        {"term": t.name, "df": f"{t.df:g}", "F": f"{t.f:.2f}", "p": f"{t.p:.3g}",
         "partial η²": f"{t.partial_eta_sq:.3f}",
         "verdict": "effect" if t.significant else "no clear effect"}
        for t in f.terms
    ]  # fmt: skip
    return rows, columns


def contrast_table(f: Factorial) -> tuple[list[dict], list[str]]:
    """report.md's contrasts of the cell means, each with its CI and p."""
    columns = ["term", "kind", "contrast", "diff", "95 % CI", "p"]
    rows = [{"term": " × ".join(c.factors), "kind": c.kind, "contrast": c.what,
             **diff_cells(c.result)} for c in f.contrasts]  # fmt: skip
    return rows, columns


ANOVA_CSV_COLUMNS = ["metric", "row", "term", "contrast", "df", "F", "p", "partial_eta_sq",
                     "diff", "ci_low", "ci_high", "mean_level", "mean_vs"]  # fmt: skip


def anova_csv_rows(f: Factorial | None) -> list[dict]:
    """anova.csv: the ANOVA's terms, then the contrasts, at full precision."""
    if f is None:
        return []
    terms = [{"metric": f.metric, "row": "term", "term": t.name, "contrast": "", "df": t.df,
              "F": t.f, "p": t.p, "partial_eta_sq": t.partial_eta_sq} for t in f.terms]
    contrasts = [{"metric": f.metric, "row": c.kind, "term": " × ".join(c.factors),
                  "contrast": c.what, "df": c.result.df, "p": c.result.p, "diff": c.result.diff,
                  "ci_low": c.result.ci_low, "ci_high": c.result.ci_high,
                  "mean_level": c.result.mean_a if c.kind != "interaction" else None,
                  "mean_vs": c.result.mean_b if c.kind != "interaction" else None}
                 for c in f.contrasts]  # fmt: skip
    return [{k: row.get(k) for k in ANOVA_CSV_COLUMNS} for row in terms + contrasts]


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


def markdown_lines(rows: Sequence[dict], columns: Sequence[str]) -> Iterator[str]:
    """A markdown table, numbers right-aligned."""
    numeric = _numeric(rows, columns)
    yield "| " + " | ".join(columns) + " |"
    yield "|" + "|".join("---:" if c in numeric else "---" for c in columns) + "|"
    for row in rows:
        yield "| " + " | ".join(_md_cell(row[c], c) for c in columns) + " |"


def job_counts_line(counts: Mapping[str, int]) -> str:
    """What the sweep did with its jobs, so a re-run that skipped everything reads as such."""
    return (
        f"jobs: {counts.get('skipped', 0)} skipped, {counts.get('resumed', 0)} resumed, "
        f"{counts.get('started', 0)} started"
    )


def print_table(rows: Sequence[dict], columns: Sequence[str], title: str) -> None:
    """A rich table; failed runs red and overfit ones yellow where rows have those columns."""
    table = Table(title=title)
    numeric = _numeric(rows, columns)
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left", overflow="fold")
    for row in rows:
        status = row.get("status", "completed")
        failed = status not in ("completed", "pruned")
        style = ("red" if failed else "dim" if status == "pruned"
                 else "yellow" if row.get("overfit") == "yes" else None)
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
    if report.factorial is not None:
        print_table(*anova_table(report.factorial), title="factorial ANOVA of test accuracy")
    for section in report.sections:
        for rows, columns, title in section.tables:
            print_table(rows, columns, title=title)
