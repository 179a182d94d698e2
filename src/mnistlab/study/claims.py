"""The study's claims checked against measured runs, and its numbers beside ours.

*Study claims* (results.yaml): each claim names pairs of the study's experiments and the
direction it expects; each pair of groups (same backend, fewest other differences) is one piece
of evidence, confirmed when the difference is in the claimed direction with p < 0.05, refuted
when opposite with p < 0.05, else inconclusive. A claim may also name a factor's levels: a
matched effect between them, when tested, is the better evidence and alone decides. Otherwise
the claim is confirmed when some evidence confirms it and none refutes it (refuted likewise),
and inconclusive when the evidence is mixed or missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from mnistlab.report.results import Section
from mnistlab.report.stats import (
    ALPHA,
    METRICS,
    Comparison,
    Effect,
    Group,
    _same,
    setting_diff,
    welch,
)
from mnistlab.report.tables import diff_cells, markdown_lines, mean_ci_cell

# the study's experiments before they moved to conf/experiment/study/ (runs that recorded them)
FORMER_NAMES = {f"seed_{run}": f"study/{run}" for backend in ("tf", "pt")
                for run in (f"{backend}_run{i}" for i in (1, 2, 3))}


def study_name(experiment: str | None) -> str | None:
    """A group's experiment under its current name."""
    return FORMER_NAMES.get(experiment, experiment) if experiment else experiment


def claim_verdict(c: Comparison, expect: str) -> str:
    """confirmed / refuted / inconclusive for a claim that a − b is ``expect`` (higher/lower)."""
    if c.p is None or c.p >= ALPHA or c.diff == 0:
        return "inconclusive"
    return "confirmed" if (c.diff > 0) == (expect == "higher") else "refuted"


def load_study() -> dict[str, Any]:
    """The study's runs, numbers and claims, shipped beside this module."""
    return yaml.safe_load(resources.files("mnistlab.study").joinpath("results.yaml").read_text())


@dataclass(frozen=True)
class StudyRow:
    """One group of one of the study's experiments: the study's numbers beside ours."""

    experiment: str
    study_run: str
    framework: str
    group: Group
    reported: dict[str, float | None]  # metric -> the study's number (a fraction)
    deviations: list[str]  # how the group's config departs from the study's hyperparameters
    note: str


def study_rows(groups: Sequence[Group], study: Mapping[str, Any]) -> list[StudyRow]:
    """A row per group whose runs are one of the study's experiments, in the study's order."""
    rows = []
    for name, spec in study["runs"].items():
        for group in (g for g in groups if study_name(g.experiment) == name):
            reported = spec.get("reported") or {}
            rows.append(StudyRow(
                experiment=name, study_run=spec["run"], framework=spec["framework"],
                group=group, reported={m: reported.get(m) for m in METRICS[:3]},
                deviations=deviations(group.config, spec.get("config") or {}),
                note=spec.get("note") or "",
            ))  # fmt: skip
    return rows


def deviations(config: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """``key=ours (study: theirs)`` for each of the study's hyperparameters we did not run."""
    missing = object()
    out = []
    for key, theirs in expected.items():
        ours = config.get(key, missing)
        if ours is missing or not _same(ours, theirs):
            shown = "(unset)" if ours is missing else ours
            out.append(f"{key}={shown} (study: {theirs})")
    return out


@dataclass(frozen=True)
class Evidence:
    """One comparison behind a claim."""

    what: str  # which groups or levels
    result: Comparison
    verdict: str
    note: str
    matched: bool = False


@dataclass(frozen=True)
class Conclusion:
    name: str
    claim: str
    metric: str
    verdict: str
    evidence: list[Evidence]


def check_conclusions(
    groups: Sequence[Group], effects: Sequence[Effect], study: Mapping[str, Any]
) -> list[Conclusion]:
    """Each of the study's claims against the groups of its experiments (module docstring)."""
    done = [g for g in groups if g.n > 0 and study_name(g.experiment) in study["runs"]]
    if not done:
        return []
    return [_conclusion(spec, done, effects) for spec in study["conclusions"]]


def _conclusion(
    spec: Mapping[str, Any], groups: Sequence[Group], effects: Sequence[Effect]
) -> Conclusion:
    metric, expect = spec["metric"], spec["expect"]
    evidence = [_matched_evidence(spec, effects)] if spec.get("matched") else []
    evidence = [e for e in evidence if e is not None]
    for first, second in spec["pairs"]:
        for a, b in _paired_groups(groups, first, second):
            result = welch(a.values.get(metric, []), b.values.get(metric, []))
            what = f"{first} ({a.backend}, n={a.n}) vs {second} ({b.backend}, n={b.n})"
            evidence.append(Evidence(
                what, result, claim_verdict(result, expect), _pair_note(a, b, spec.get("about")),
            ))  # fmt: skip
    return Conclusion(spec["name"], spec["claim"], metric, overall_verdict(evidence), evidence)


def _matched_evidence(spec: Mapping[str, Any], effects: Sequence[Effect]) -> Evidence | None:
    """The effects row between the claim's two levels, read in the claim's direction; none when
    other keys changed along with the factor (then it is no cleaner than the pairs)."""
    want = spec["matched"]
    factor, level, vs = want["factor"], str(want["level"]), str(want["vs"])
    for e in effects:
        if e.factor == factor and {e.level, e.vs} == {level, vs} and not e.confounded:
            result = e.result if e.level == level else e.result.reversed()
            note = f"matched over {e.strata} combination(s) of the other factors"
            what = f"{factor}={level} vs {factor}={vs}"
            return Evidence(what, result, claim_verdict(result, spec["expect"]), note, True)
    return None


def _paired_groups(groups: Sequence[Group], first: str, second: str) -> list[tuple[Group, Group]]:
    """Each group of ``first`` with the group(s) of ``second`` on its backend that differ from
    it in the fewest keys."""
    pairs = []
    for a in (g for g in groups if study_name(g.experiment) == first):
        same = [b for b in groups if study_name(b.experiment) == second and b.backend == a.backend]
        if same:
            fewest = min(len(setting_diff(a, b)) for b in same)
            pairs += [(a, b) for b in same if len(setting_diff(a, b)) == fewest]
    return pairs


def _pair_note(a: Group, b: Group, about: Sequence[str] | None) -> str:
    """Which other keys the two groups differ in: the comparison is not isolated then."""
    about = list(about or [])
    other = [k for k in setting_diff(a, b) if k not in about]
    if not other:
        return f"differ only in {', '.join(about)}" if about else "same settings"
    return f"also differ in {', '.join(other)}: not an isolated comparison"


def overall_verdict(evidence: Sequence[Evidence]) -> str:
    """Tested matched evidence decides; else confirmed/refuted only when nothing contradicts."""
    matched = [e.verdict for e in evidence if e.matched and e.result.tested]
    verdicts = set(matched or [e.verdict for e in evidence])
    for verdict, opposite in (("confirmed", "refuted"), ("refuted", "confirmed")):
        if verdict in verdicts and opposite not in verdicts:
            return verdict
    return "inconclusive"


def study_table(rows: Sequence[StudyRow]) -> tuple[list[dict], list[str]]:
    """The study's numbers beside our group means ± 95 % CI half-width."""
    metrics = METRICS[:3]
    columns = ["experiment", "study run", "backend", "n"]
    columns += [f"{m} {who}" for m in metrics for who in ("study", "ours")]
    columns += ["deviations from the study", "study note"]
    table = []
    for r in rows:
        row: dict[str, Any] = {"experiment": r.experiment, "study run": r.study_run,
                               "backend": r.group.backend, "n": r.group.n}  # fmt: skip
        for m in metrics:
            reported = r.reported[m]
            row[f"{m} study"] = "-" if reported is None else f"{reported:.4f}"
            row[f"{m} ours"] = mean_ci_cell(r.group.stats[m])
        row["deviations from the study"] = "; ".join(r.deviations) or "none"
        row["study note"] = r.note
        table.append(row)
    return table, columns


def conclusion_table(conclusions: Sequence[Conclusion]) -> tuple[list[dict], list[str]]:
    """A row per piece of evidence; the claim and its verdict on its first row."""
    columns = ["claim", "verdict", "evidence", "metric", "diff", "95 % CI", "p", "says", "note"]
    rows = []
    for c in conclusions:
        head = {"claim": c.name, "verdict": c.verdict}
        if not c.evidence:
            rows.append({**dict.fromkeys(columns, "-"), **head, "note": "no runs to compare"})
        for i, e in enumerate(c.evidence):
            rows.append({
                **(head if i == 0 else {"claim": "", "verdict": ""}), "evidence": e.what,
                "metric": c.metric, **diff_cells(e.result), "says": e.verdict, "note": e.note,
            })  # fmt: skip
    return rows, columns


def study_section(groups: Sequence[Group], effects: Sequence[Effect]) -> Section | None:
    """The study's numbers beside ours and its claims checked, when runs of its experiments
    are in the report."""
    study = load_study()
    rows = study_rows(groups, study)
    if not rows:
        return None
    conclusions = check_conclusions(groups, effects, study)
    table, columns = study_table(rows)
    claims, claim_columns = conclusion_table(conclusions)
    lines = [
        "## Study vs measured",
        "",
        "The study's reported accuracies (../shared/SEED.md, `study/results.yaml`) beside our "
        "group means ± the 95 % CI half-width; deviations name the study's hyperparameters our "
        "runs did not use.",
        "",
        *markdown_lines(table, columns),
        "",
        "### The study's conclusions",
        "",
        "Welch's test per piece of evidence: confirmed when the difference is in the claimed "
        "direction with p < 0.05, refuted when opposite with p < 0.05, else inconclusive. A "
        "tested matched effect decides alone; otherwise a claim is confirmed (refuted) when some "
        "evidence confirms (refutes) it and none says the opposite.",
        "",
    ]
    lines += [f"- **{c.name}** ({c.claim}): **{c.verdict}**" for c in conclusions]
    return Section(
        markdown=[*lines, "", *markdown_lines(claims, claim_columns)],
        tables=[(table, columns, "study vs measured (mean ± 95 % CI)"),
                (claims, claim_columns, "the study's conclusions")],
    )
