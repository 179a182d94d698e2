"""Robustness in a report: for each group of seeds (a recipe), its runs' mean test accuracy as
eval.py's transforms grow (`python eval.py run=<sweep dir> eval.robustness=[rotate]`, then the
report again): how accuracy falls as the test digits rotate, per augmentation, measured rather
than argued. A built-in section; it is empty until the runs have been evaluated so."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mnistlab.plotting import save_png
from mnistlab.report.results import Report, Section
from mnistlab.report.runs import Run
from mnistlab.report.tables import markdown_lines

FIGURE = "robustness.png"
Curves = dict[str, dict[str, dict[float, list[float]]]]  # transform -> group -> strength -> accs


def group_curves(report: Report, runs: Sequence[Run]) -> Curves:
    by_name = {run.name: run for run in runs}
    curves: Curves = {}
    for group in report.groups:
        for name in group.runs:
            for transform, points in by_name[name].robustness.items():
                per_strength = curves.setdefault(transform, {}).setdefault(group.label, {})
                for strength, accuracy in points:
                    per_strength.setdefault(strength, []).append(accuracy)
    return curves


def table(per_group: dict[str, dict[float, list[float]]]) -> tuple[list[dict], list[str]]:
    """Rows: groups; columns: strengths; cells: mean accuracy (runs)."""
    strengths = sorted({s for points in per_group.values() for s in points})
    columns = ["group", *(f"{s:g}" for s in strengths)]
    rows = [{"group": label, **{f"{s:g}": f"{np.mean(points[s]):.4f} ({len(points[s])})"
                                for s in strengths if s in points}}
            for label, points in per_group.items()]
    return rows, columns


def draw(curves: Curves, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(curves), 3.4))
    for i, (transform, per_group) in enumerate(curves.items(), 1):
        ax = fig.add_subplot(1, len(curves), i)
        for label, points in per_group.items():
            xs = sorted(points)
            ax.plot(xs, [np.mean(points[x]) for x in xs], marker="o", label=label)
        ax.set(xlabel=transform, ylabel="test accuracy" if i == 1 else None)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Accuracy as the test images change (eval.py), mean over each group's seeds")
    save_png(fig, path)


def robustness_section(report: Report, runs: Sequence[Run]) -> list[Section]:
    curves = group_curves(report, runs)
    if not curves:
        return []
    path = report.paths["report.md"].parent / FIGURE
    draw(curves, path)
    report.paths[FIGURE] = path
    lines = ["## Robustness", "",
             "Test accuracy of each group's best checkpoints as eval.py's transform grows "
             "(inference/transforms.py gives the units), mean over the runs evaluated (their "
             "count in brackets).", "", f"![robustness]({FIGURE})"]
    tables = []
    for transform, per_group in curves.items():
        rows, columns = table(per_group)
        lines += ["", f"### {transform}", "", *markdown_lines(rows, columns)]
        tables.append((rows, columns, f"robustness: {transform}"))
    return [Section(markdown=lines, tables=tables)]
