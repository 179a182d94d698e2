"""report.md for mnistlab.report: every table with the rule behind it in words, so the file
can be read (and its verdicts checked) without this code at hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mnistlab.report.factors import NON_RESULT_KEYS, NON_RESULT_ROOTS, SEED_KEY, level_key
from mnistlab.report.plots import BAND
from mnistlab.report.results import (
    OVERFIT_GAP,
    OVERFIT_RISING_EPOCHS,
    Report,
    named_experiments,
)
from mnistlab.report.tables import (
    anova_table,
    contrast_table,
    effect_table,
    group_table,
    job_counts_line,
    markdown_lines,
)


def _summary_lines(report: Report) -> list[str]:
    rows, failed, pruned = report.rows, report.failed, report.pruned
    completed = len(rows) - len(failed) - len(pruned)
    summary = f"{len(rows)} run(s): {completed} completed, "
    summary += f"{len(pruned)} pruned, " if pruned else ""
    summary += f"{len(failed)} failed."
    best = rows[0]
    if best["status"] == "completed" and best["val_acc"] is not None:
        summary += f" Best: `{best['run']}` (val_acc {best['val_acc']:.4f})."
    lines = [summary]
    if report.job_counts is not None:
        lines += ["", job_counts_line(report.job_counts)]
    return lines


def _factor_lines(report: Report) -> list[str]:
    ignored = [f"{root}.*" for root in sorted(NON_RESULT_ROOTS)] + sorted(NON_RESULT_KEYS)
    lines = [
        "## Factors",
        "",
        "Read from the resolved configs (`.hydra/config.yaml`), not from override strings. Never "
        f"factors: keys that change no result ({', '.join(ignored)}) and `{SEED_KEY}`, the "
        "replicate axis. A key whose value is a function of another varying key's is folded "
        "into it.",
        "",
    ]
    if not report.factors:
        return [*lines, "Nothing varied but the seed." if len(report.rows) > 1 else "One run."]
    levels = {f: sorted({g.levels[f] for g in report.groups if f in g.levels}, key=level_key)
              for f in report.factors}  # fmt: skip
    for f in report.factors:
        also = report.folded.get(f)
        sets = f" (sets {', '.join(also)})" if also else ""
        lines.append(f"- `{f}`: {', '.join(levels[f])}{sets}")
    return lines


def _group_lines(report: Report) -> list[str]:
    rows, columns = group_table(report.groups)
    return [
        "## Groups",
        "",
        f"Runs whose resolved configs differ only in `{SEED_KEY}`. Each cell: mean ± sample std "
        "(ddof=1) [95 % confidence interval of the mean, mean ± t(0.975, n-1)·std/√n] over the "
        "completed runs; a single run shows its value. gap = train_acc - val_acc. Also in "
        "groups.csv.",
        "",
        *markdown_lines(rows, columns),
    ]


EFFECTS_RULE = (
    "For each factor, every pair of its levels on test accuracy: diff = mean(level) - mean(vs), "
    "95 % CI with Welch-Satterthwaite df, p from Welch's t-test. Only matched runs are compared: "
    "runs equal on every other factor (a stratum), in the strata holding both levels. Those runs "
    "are pooled when the strata weigh the same in both levels (a balanced design); otherwise "
    "each stratum keeps its lowest-seed min(n_level, n_vs) runs of each level (\"trimmed\"). "
    "better/worse: p < 0.05 and the CI excludes 0. A factor's effect includes the keys that "
    "changed along with it (confounded with; see Factors)."
)


def _effect_lines(report: Report) -> list[str]:
    lines = ["## Effects on test accuracy", "", EFFECTS_RULE, ""]
    if not report.effects:
        lines.append("No matched pair of levels." if report.factors else "Nothing varied.")
    else:
        rows, columns = effect_table(report.effects)
        lines += markdown_lines(rows, columns)
    if report.unmatched:
        lines += ["", f"{report.unmatched} level pair(s) have no matched runs (they differ in "
                      "other factors too) and are not compared."]  # fmt: skip
    return lines


def _factorial_lines(report: Report) -> list[str]:
    """The ANOVA and contrasts of a factorial sweep (none: no section)."""
    f = report.factorial
    if f is None:
        return []
    low, high = f.per_cell
    per_cell = f"{low}" if low == high else f"{low}-{high}"
    design = " × ".join(f"`{x}` ({len(f.levels[x])})" for x in f.factors)
    lines = [
        "## Factorial analysis of test accuracy",
        "",
        f"Every combination of {design} ran, {per_cell} run(s) each ({f.runs} runs): an analysis "
        "of variance (OLS on sum-to-zero coded factors, type III sums of squares, statsmodels) "
        "tests each factor's main effect and each interaction; the error is the seeds' spread "
        f"within the combinations, {f.residual_df} degrees of freedom. effect: p < 0.05. "
        "partial η² = SS_term / (SS_term + SS_residual).",
        "",
        *markdown_lines(*anova_table(f)),
        "",
        "Contrasts of the cell means, each with its 95 % CI (t with the residual df) and p. "
        "main: the difference of two levels' marginal means (each the unweighted mean of its "
        "cells). interaction: the first factor's difference at one level of the second minus "
        "the same difference at another (0 when it does not depend on it). simple: a two-level "
        "factor's difference at one level of another. Each p is the contrast's own, not "
        "corrected for their number; the F tests above are the primary tests. Also in "
        "anova.csv.",
        "",
        *markdown_lines(*contrast_table(f)),
    ]
    if "interaction.png" in report.paths:
        lines += ["", "Interactions: for each pair of factors, the mean test accuracy of each "
                      "combination of their levels (over the other factors' levels) with its "
                      "95 % CI from the residual variance; parallel lines mean no interaction.",
                  "", "![interactions](interaction.png)"]  # fmt: skip
    return lines


def _pruned_lines(pruned: Sequence[dict]) -> list[str]:
    """Runs an Optuna search stopped early: listed apart from the failures (none: no section)."""
    if not pruned:
        return []
    return ["## Pruned runs", "",
            "Stopped by the Optuna search's pruner after the epoch given; their trials hold the "
            "last validation accuracy reported.", "",
            *(f"- `{row['run']}`: after epoch {row['epochs']}, val_acc {row['val_acc']:.4f}"
              if row["val_acc"] is not None else f"- `{row['run']}`: after epoch {row['epochs']}"
              for row in pruned)]


def _failed_lines(failed: Sequence[dict]) -> list[str]:
    lines = ["## Failed jobs", ""]
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
    return lines + ([] if failed else ["None."])


def _overfit_lines(reasons: Mapping[str, str]) -> list[str]:
    return [
        "## Overfitting",
        "",
        f"Flagged when val_loss rises for {OVERFIT_RISING_EPOCHS}+ consecutive epochs while "
        f"train_loss falls, or when train_acc - val_acc > {OVERFIT_GAP}.",
        "",
        *([f"- `{run}`: {reason}" for run, reason in reasons.items()] or ["None flagged."]),
    ]


ABLATION_TEXT = (
    "Ablation: per level of each factor whose levels are compared on matched runs (an effects "
    "row), over the runs whose other factors' levels ran at another level too, the mean test "
    "accuracy with its 95 % CI (error bars) and each run as a dot."
)
EXPERIMENTS_TEXT = (
    "Per experiment: the test accuracy of each of its groups (mean, 95 % CI; dots: runs)"
)


def _plot_lines(paths: Mapping[str, Path], marks_label: str | None) -> list[str]:
    """The figures; ``marks_label``: a sweep of named experiments, its figure marked with it."""
    if marks_label is None:
        ablation_text = ABLATION_TEXT
    else:
        ablation_text = EXPERIMENTS_TEXT + (
            f", and the {marks_label}'s figure as a dashed line." if marks_label else ".")
    lines = ["## Plots", ""]
    if "curves.png" in paths:
        lines += [f"Learning curves: a line per group, the mean over its runs per epoch; the band "
                  f"is the {BAND}.", "", "![learning curves](curves.png)", ""]  # fmt: skip
    lines += [ablation_text, "", "![ablation](ablation.png)"]
    if "parallel.png" in paths:
        lines += ["", "Parallel coordinates: each run's factor levels and test accuracy.", "",
                  "![parallel coordinates](parallel.png)"]  # fmt: skip
    return lines


def _marks_label(report: Report) -> str | None:
    """None unless the runs are named experiments; then the label of the figure's marks."""
    if not named_experiments(report.groups):
        return None
    return next((s.marks_label for s in report.sections if s.marks), "")


def report_markdown(report: Report) -> str:
    """The whole report.md; a section with nothing to say is left out."""
    sections = [
        ["# mnistlab report", "", *_summary_lines(report), "",
         *markdown_lines(report.rows, report.columns)],
        _factor_lines(report),
        _group_lines(report),
        _effect_lines(report),
        _factorial_lines(report),
        *(section.markdown for section in report.sections),
        _pruned_lines(report.pruned),
        _failed_lines(report.failed),
        _overfit_lines(report.reasons),
        _plot_lines(report.paths, _marks_label(report)),
        ["## Provenance", "", *report.provenance] if report.provenance else [],
    ]  # fmt: skip
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"
