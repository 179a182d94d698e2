"""The report's figures, for mnistlab.report: what each shows, taken from the runs, rows and
groups; mnistlab.report.plots draws it and knows nothing of runs."""

from __future__ import annotations

from collections.abc import Sequence

from mnistlab.report.factors import NO_FACTOR, level_key, run_levels
from mnistlab.report.plots import plot_ablation, plot_curves, plot_parallel
from mnistlab.report.results import Report
from mnistlab.report.runs import Run
from mnistlab.report.stats import Group

PARALLEL_MIN_FACTORS = 3  # parallel.png only when at least this many factors vary


def figure_names(factors: Sequence[str]) -> list[str]:
    """The figure files a report over these factors has."""
    names = ["curves.png", "ablation.png"]
    return [*names, "parallel.png"] if len(factors) >= PARALLEL_MIN_FACTORS else names


def draw_figures(report: Report, runs: Sequence[Run]) -> None:
    """Each of the report's figures, at its path in ``report.paths``."""
    paths = report.paths
    plot_curves(_curve_series(report.groups, runs), paths["curves.png"])
    plot_ablation(_ablation_data(runs, report.rows, report.factors), paths["ablation.png"])
    if "parallel.png" in paths:
        plot_parallel(*_parallel_data(runs, report.rows, report.factors), paths["parallel.png"])


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
        data[factor] = sorted(by_level.items(), key=lambda item: level_key(item[0]))
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
