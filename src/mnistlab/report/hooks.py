"""Plug-ins that add sections to a report: `mnistlab.report` entry points, each a callable
`(report, runs) -> list[Section]` called after the generic tables are built.

The report itself knows no dataset, class count or study; what does (the student study's claims
and its 6<->9 analysis, `mnistlab.study`) registers here in its package's metadata
(pyproject.toml: `[project.entry-points."mnistlab.report"]`), the way pytest and Hydra find
their plug-ins, so another study adds its own without touching the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from mnistlab.report.results import Report, Section
from mnistlab.report.runs import Run

Hook = Callable[[Report, Sequence[Run]], list[Section]]
GROUP = "mnistlab.report"


def installed_hooks() -> list[Hook]:
    """Every hook the installed packages register, in name order (a stable report layout)."""
    return [ep.load() for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name)]


def add_sections(report: Report, runs: Sequence[Run], hooks: Sequence[Hook]) -> None:
    for hook in hooks:
        report.sections += hook(report, runs)
