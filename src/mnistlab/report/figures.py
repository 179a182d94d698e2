"""The report's figures, for mnistlab.report: what each shows, taken from the runs, rows and
groups; mnistlab.report.plots draws it and knows nothing of runs."""

from __future__ import annotations

from collections.abc import Sequence

from mnistlab.report.anova import Factorial
from mnistlab.report.factors import NO_FACTOR, level_key, run_levels
from mnistlab.report.plots import (
    plot_ablation,
    plot_curves,
    plot_experiments,
    plot_interactions,
    plot_parallel,
)
from mnistlab.report.results import Report, named_experiments
from mnistlab.report.runs import Run, natural_key
from mnistlab.report.stats import Group

PARALLEL_MIN_FACTORS = 3  # parallel.png only when at least this many factors vary


def figure_names(
    factors: Sequence[str], factorial: Factorial | None = None, curves: bool = True
) -> list[str]:
    """The figure files a report over these factors has (curves: when runs have metrics)."""
    names = [*(["curves.png"] if curves else []), "ablation.png"]
    if len(factors) >= PARALLEL_MIN_FACTORS:
        names.append("parallel.png")
    if factorial is not None and len(factorial.factors) >= 2:
        names.append("interaction.png")
    return names


def draw_figures(report: Report, runs: Sequence[Run]) -> None:
    """Each of the report's figures, at its path in ``report.paths``."""
    paths = report.paths
    if "curves.png" in paths:
        plot_curves(_curve_series(report.groups, runs), paths["curves.png"])
    if named_experiments(report.groups):
        marks = {k: v for section in report.sections for k, v in section.marks.items()}
        label = next((s.marks_label for s in report.sections if s.marks), "")
        plot_experiments(_experiment_panels(report.groups, marks), label, paths["ablation.png"])
    else:
        plot_ablation(_ablation_data(runs, report), paths["ablation.png"])
    if "parallel.png" in paths:
        plot_parallel(*_parallel_data(runs, report.rows, report.factors), paths["parallel.png"])
    if "interaction.png" in paths and report.factorial is not None:
        f = report.factorial
        pairs = [(a, b, f.cell_means(a, b)) for i, a in enumerate(f.factors)
                 for b in f.factors[i + 1:]]  # fmt: skip
        plot_interactions(pairs, paths["interaction.png"])


def _experiment_panels(
    groups: Sequence[Group], marks: dict[str, float]
) -> list[tuple[str, list[tuple[str, list[float]]], float | None]]:
    """Per experiment (by name): its groups' test accuracies, and its mark."""
    panels: dict[str, list[tuple[str, list[float]]]] = {}
    for g in groups:
        name = str(g.experiment)
        label = g.label.split(" · ", 1)[1] if " · " in g.label else g.label
        panels.setdefault(name, []).append((label, list(g.values["test_acc"])))
    named = sorted(panels.items(), key=lambda item: natural_key(item[0]))
    return [(name.rsplit("/", 1)[-1], sorted(levels), marks.get(name)) for name, levels in named]


def _ablation_data(runs: Sequence[Run], report: Report) -> dict[str, list[tuple[str, list[float]]]]:
    """Factor -> [(level, test accuracies of its matched runs)], levels sorted, for the factors
    whose levels are compared on matched runs (an effects row): a run counts when the other
    factors' levels it ran at were also run at another level of this factor, so that no level's
    mean mixes in recipes the other levels never ran."""
    by_name = {row["run"]: row for row in report.rows}
    accs = [
        by_name[r.name]["test_acc"] if by_name[r.name]["status"] == "completed" else None
        for r in runs
    ]
    factors = [f for f in report.factors if any(e.factor == f for e in report.effects)]
    if not factors:
        name = runs[0].name if len(runs) == 1 else f"all {len(runs)} runs"
        return {NO_FACTOR: [(name, [a for a in accs if a is not None])]}
    data: dict[str, list[tuple[str, list[float]]]] = {}
    per_run = run_levels(runs, report.factors)
    for factor in factors:
        strata: dict[tuple, set[str]] = {}
        for levels, acc in zip(per_run, accs, strict=True):
            if levels is not None and acc is not None:
                strata.setdefault(_stratum(levels, factor), set()).add(levels[factor])
        by_level: dict[str, list[float]] = {}
        for levels, acc in zip(per_run, accs, strict=True):
            if levels is not None and len(strata.get(_stratum(levels, factor), ())) >= 2:
                by_level.setdefault(levels[factor], []).extend([] if acc is None else [acc])
        data[factor] = sorted(by_level.items(), key=lambda item: level_key(item[0]))
    return data


def _stratum(levels: dict[str, str], factor: str) -> tuple:
    return tuple(sorted((k, v) for k, v in levels.items() if k != factor))


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
