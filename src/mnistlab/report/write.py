"""The report's one entry point, :func:`write_report` (and its command line, ``python -m
mnistlab.report``): read every run under the given dirs, analyse them and write the files.

This module only wires the steps together, each in a module of its own:
:mod:`~mnistlab.report.runs` reads the run directories, :mod:`~mnistlab.report.factors` finds
what varied (the factors and their levels, from the resolved configs),
:mod:`~mnistlab.report.results` builds the rows, groups of seeds and matched effects (with the
statistics of :mod:`~mnistlab.report.stats`), and :mod:`~mnistlab.report.tables`,
:mod:`~mnistlab.report.markdown` and :mod:`~mnistlab.report.figures` write them out.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

from mnistlab.atomic import write_atomically
from mnistlab.report.factors import SEED_KEY, confounded_keys, factor_keys, varying_keys
from mnistlab.report.figures import draw_figures, figure_names
from mnistlab.report.hooks import Hook, add_sections, installed_hooks
from mnistlab.report.markdown import report_markdown
from mnistlab.report.results import (
    RESULT_COLUMNS,
    Report,
    build_effects,
    build_factorial,
    build_groups,
    build_rows,
    experiment_column,
    named_experiments,
)
from mnistlab.report.robustness import robustness_section
from mnistlab.report.runs import Run, find_runs, load_run, runs_from_table
from mnistlab.report.tables import (
    ANOVA_CSV_COLUMNS,
    EFFECT_CSV_COLUMNS,
    anova_csv_rows,
    effect_csv_rows,
    group_csv_rows,
    print_report,
    to_csv,
)
from mnistlab.run.provenance import provenance_lines

TEXT_FILES = ["runs.csv", "groups.csv", "effects.csv", "report.md"]


class NoRunsError(SystemExit):
    """Nothing to report: exits the CLI with one line instead of a traceback."""


def write_report(
    dirs: Sequence[Path],
    out_dir: Path,
    show: bool = True,
    *,
    job_counts: Mapping[str, int] | None = None,
    hooks: Sequence[Hook] | None = None,
) -> Report:
    """Read every run under ``dirs`` and write runs.csv, groups.csv, effects.csv, report.md,
    curves.png, ablation.png and, when 3+ factors vary, parallel.png.

    ``job_counts`` ({"skipped": n, "resumed": n, "started": n}, from the sweep) adds a line;
    ``hooks`` add sections (default: the installed plug-ins).
    Raises NoRunsError (a SystemExit with a one-line message) when there is no summary.json.
    """
    tables = [Path(d) for d in dirs if Path(d).is_file()]
    dirs = [Path(d) for d in dirs if not Path(d).is_file()]
    run_dirs = find_runs(dirs)
    if not run_dirs and not tables:
        raise NoRunsError(
            f"error: no runs (summary.json) found under {', '.join(str(d) for d in dirs)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from_dirs = [load_run(p, out_dir) for p in run_dirs]
    runs = [*from_dirs, *(run for table in tables for run in _table_runs(table))]
    report = analyse(runs, out_dir, job_counts)
    add_sections(report, runs, [robustness_section,
                                *(installed_hooks() if hooks is None else hooks)])
    report.provenance = [
        *(f"- runs read from the table `{t}`: their directories were not at hand, so there are "
          "no curves, confusions or provenance of theirs" for t in tables),
        *provenance_lines(dirs, [run.summary for run in from_dirs]),
    ]  # fmt: skip
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
    confounded = confounded_keys(folded, configs)
    effects, unmatched = build_effects(runs, rows, confounded)
    # named experiments differ in whatever each one sets: their levels are no design
    factorial = None if named_experiments(groups) else build_factorial(runs, rows, factors)
    names = [*TEXT_FILES, *(["anova.csv"] if factorial else []),
             *figure_names(factors, factorial, curves=any(run.metrics for run in runs))]
    return Report(
        rows=rows, varying=varying, paths={n: out_dir / n for n in names},
        columns=["run", *(["experiment"] if experiment_column(runs) else []), *varying,
                 *RESULT_COLUMNS], factors=factors, reasons=reasons,
        folded={f: keys for f, keys in folded.items() if keys}, groups=groups, effects=effects,
        unmatched=unmatched, confounded=confounded,
        factorial=factorial,
        job_counts=dict(job_counts) if job_counts is not None else None,
    )  # fmt: skip


def _table_runs(table: Path) -> list[Run]:
    try:
        return runs_from_table(table)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise NoRunsError(f"error: cannot read runs from {table}: {exc}") from None


def write_files(report: Report, runs: Sequence[Run]) -> None:
    """Each file atomically: a reader (or a crash) never sees half a report."""
    paths, keys = report.paths, [k for k in report.varying if k != SEED_KEY]
    write_atomically(paths["runs.csv"], to_csv(report.rows, report.columns))
    write_atomically(paths["groups.csv"], to_csv(*group_csv_rows(report.groups, keys)))
    effects = effect_csv_rows(report.effects)
    write_atomically(paths["effects.csv"], to_csv(effects, EFFECT_CSV_COLUMNS))
    if "anova.csv" in paths:
        write_atomically(paths["anova.csv"],
                         to_csv(anova_csv_rows(report.factorial), ANOVA_CSV_COLUMNS))
    write_atomically(paths["report.md"], report_markdown(report))
    draw_figures(report, runs)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mnistlab.report``: the report of the given directories, printed too."""
    parser = argparse.ArgumentParser(
        prog="python -m mnistlab.report",
        description="Tabulate and plot finished runs (any directory holding summary.json).",
    )
    parser.add_argument(
        "dirs",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="run dir, sweep dir or outputs/ (searched recursively), or a report's runs.csv "
        "to report its runs again",
    )
    parser.add_argument("--out", type=Path,
                        help="where to write the report (default: the first DIR, or its folder)")
    parser.add_argument("--no-show", action="store_true", help="do not print the table")
    args = parser.parse_args(argv)
    first = args.dirs[0]
    out = args.out or (first.parent if first.is_file() else first)
    report = write_report(args.dirs, out, show=not args.no_show)
    if not args.no_show:
        print(f"wrote {', '.join(str(p) for p in report.paths.values())}")
    return 0
