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
    SIX_NINE_FACTOR,
    Report,
)
from mnistlab.report.stats import effect_verdict, welch
from mnistlab.report.tables import (
    conclusion_table,
    diff_cells,
    effect_table,
    group_table,
    job_counts_line,
    markdown_lines,
    six_nine_table,
    study_table,
)


def _summary_lines(report: Report) -> list[str]:
    rows, failed = report.rows, report.failed
    summary = f"{len(rows)} run(s): {len(rows) - len(failed)} completed, {len(failed)} failed."
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


def _study_lines(report: Report) -> list[str]:
    if not report.study:
        return []
    rows, columns = study_table(report.study)
    claims, claim_columns = conclusion_table(report.conclusions)
    lines = [
        "## Study vs measured",
        "",
        "The study's reported accuracies (../shared/SEED.md, `study_results.yaml`) beside our "
        "group means ± the 95 % CI half-width; deviations name the study's hyperparameters our "
        "runs did not use.",
        "",
        *markdown_lines(rows, columns),
        "",
        "### The study's conclusions",
        "",
        "Welch's test per piece of evidence: confirmed when the difference is in the claimed "
        "direction with p < 0.05, refuted when opposite with p < 0.05, else inconclusive. A "
        "tested matched effect decides alone; otherwise a claim is confirmed (refuted) when some "
        "evidence confirms (refutes) it and none says the opposite.",
        "",
    ]
    lines += [f"- **{c.name}** ({c.claim}): **{c.verdict}**" for c in report.conclusions]
    return [*lines, "", *markdown_lines(claims, claim_columns)]


def _six_nine_lines(counts: Mapping[str, Sequence[float]]) -> list[str]:
    if not counts:
        return []
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
    return lines


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


def _plot_lines(paths: Mapping[str, Path]) -> list[str]:
    lines = [
        "## Plots",
        "",
        f"Learning curves: a line per group, the mean over its runs per epoch; the band is the "
        f"{BAND}.",
        "",
        "![learning curves](curves.png)",
        "",
        "Ablation: per level of each factor, pooled over the other factors, the mean test "
        "accuracy with its 95 % CI (error bars) and each run as a dot.",
        "",
        "![ablation](ablation.png)",
    ]
    if "parallel.png" in paths:
        lines += ["", "Parallel coordinates: each run's factor levels and test accuracy.", "",
                  "![parallel coordinates](parallel.png)"]  # fmt: skip
    return lines


def report_markdown(report: Report) -> str:
    """The whole report.md; a section with nothing to say is left out."""
    sections = [
        ["# mnistlab report", "", *_summary_lines(report), "",
         *markdown_lines(report.rows, report.columns)],
        _factor_lines(report),
        _group_lines(report),
        _effect_lines(report),
        _study_lines(report),
        _six_nine_lines(report.six_nine),
        _failed_lines(report.failed),
        _overfit_lines(report.reasons),
        _plot_lines(report.paths),
        ["## Provenance", "", *report.provenance] if report.provenance else [],
    ]  # fmt: skip
    return "\n\n".join("\n".join(s) for s in sections if s) + "\n"
