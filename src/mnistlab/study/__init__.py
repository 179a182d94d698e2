"""The student study this project reproduces (../shared/SEED.md): its experiments are
conf/experiment/study/*.yaml, its reported numbers and claims results.yaml. It plugs into the
generic report through one hook, `report_section` (the `mnistlab.report` entry point in
pyproject.toml): the study's numbers beside ours, its claims checked (`claims`) and the 6<->9
confusions behind its "flips hurt" (`six_nine`)."""

from __future__ import annotations

from collections.abc import Sequence

from mnistlab.report.results import Report, Section
from mnistlab.report.runs import Run
from mnistlab.study.claims import study_section
from mnistlab.study.six_nine import six_nine_section


def report_section(report: Report, runs: Sequence[Run]) -> list[Section]:
    """What the study adds to a report: nothing when no run is of its experiments or digits."""
    sections = (study_section(report), six_nine_section(runs))
    return [s for s in sections if s is not None]
