"""6<->9 confusions: the study's reason to drop flips ("a flipped 6 looks like a 9"), counted in
each digit run's confusion.csv and compared by augmentation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mnistlab.report.factors import level_key, level_of
from mnistlab.report.results import Section
from mnistlab.report.runs import Run
from mnistlab.report.stats import describe, effect_verdict, welch
from mnistlab.report.tables import diff_cells, markdown_lines, stat_cell

SIX_NINE_FACTOR = "aug.name"  # what the 6<->9 confusions are compared by
DIGITS = ("mnist",)  # datasets whose classes 6 and 9 are the digits
DIGIT_NAMES = tuple(str(d) for d in range(10))  # their confusion.csv's classes


def six_nine_counts(runs: Sequence[Run]) -> dict[str, list[float]]:
    """Aug level -> each run's test images of 6 predicted as 9 plus 9 predicted as 6."""
    counts: dict[str, list[float]] = {}
    for run in runs:
        digits = run.config is not None and run.config.get("data.name") in DIGITS
        if digits and run.confusion is not None and run.confusion.classes == DIGIT_NAMES:
            matrix = run.confusion.matrix
            level = level_of(run.config, SIX_NINE_FACTOR)
            counts.setdefault(level, []).append(float(matrix[6, 9] + matrix[9, 6]))
    return dict(sorted(counts.items(), key=lambda item: level_key(item[0])))


def six_nine_table(counts: Mapping[str, Sequence[float]]) -> tuple[list[dict], list[str]]:
    """Per aug level, how many runs and their 6<->9 confusions, mean ± std [CI]."""
    columns = [SIX_NINE_FACTOR, "runs", "6<->9 confusions"]
    rows = [
        {SIX_NINE_FACTOR: level, "runs": len(v), "6<->9 confusions": stat_cell(describe(v), 1)}
        for level, v in counts.items()
    ]
    return rows, columns


def six_nine_section(runs: Sequence[Run]) -> Section | None:
    """Per augmentation, the runs' 6<->9 confusions, when digit runs wrote confusion.csv."""
    counts = six_nine_counts(runs)
    if not counts:
        return None
    rows, columns = six_nine_table(counts)
    lines = [
        "## 6<->9 confusions",
        "",
        "Per run, test images of a 6 predicted as 9 plus of a 9 predicted as 6 (confusion.csv), "
        f"by {SIX_NINE_FACTOR}, pooled over the other factors: mean ± std [95 % CI].",
        "",
        *markdown_lines(rows, columns),
    ]
    if "flip" in counts and "shift_rotate" in counts:
        c = welch(counts["flip"], counts["shift_rotate"])
        cells = diff_cells(c)
        verdict = effect_verdict(c)
        verdict = {"better": "flip confuses more", "worse": "flip confuses less"}.get(
            verdict, verdict
        )
        lines += ["", f"flip - shift_rotate (Welch): {cells['diff']} {cells['95 % CI']}, "
                      f"p = {cells['p']}: {verdict}."]  # fmt: skip
    return Section(markdown=lines,
                   tables=[(rows, columns, "6<->9 confusions per aug level")])
