"""The study's claims checked against measured runs, and its numbers beside ours.

*Study claims* (results.yaml), checked on runs of the study's dataset: each claim names the
direction it expects, the keys it is about, pairs of the study's experiments and a factor's
levels. Each pair of groups (same backend, fewest other differences) and each factor's two
levels on matched runs (the factorial ANOVA's main effect where the runs form a factorial) is a
piece of evidence. Evidence that also changes keys the claim is not about is *confounded*: it
cannot tell the claimed cause from the others. Isolated evidence alone decides (confirmed,
refuted, inconclusive; CONCLUSIONS_RULE); a claim with only confounded evidence is confounded,
with the keys, and names the sweep (results.yaml's ``isolate``) that would isolate it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from mnistlab.report.anova import factorial_analysis
from mnistlab.report.factors import value_text
from mnistlab.report.results import Report, Section, level_orders, named_experiments
from mnistlab.report.stats import (
    ALPHA,
    METRICS,
    Comparison,
    Group,
    Obs,
    _same,
    matched_samples,
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
    """``key=ours (study: theirs)`` for each of the study's hyperparameters we did not run; a
    key the run's config does not record (a run read back from runs.csv has only the keys that
    varied) is not compared."""
    return [f"{key}={config[key]} (study: {theirs})" for key, theirs in expected.items()
            if key in config and not _same(config[key], theirs)]  # fmt: skip


@dataclass(frozen=True)
class Evidence:
    """One comparison behind a claim."""

    what: str  # which groups or levels
    result: Comparison
    verdict: str  # confirmed / refuted / inconclusive, or confounded (it cannot tell)
    note: str
    matched: bool = False  # a factor's levels on matched runs (else two experiments' groups)
    confounded: tuple[str, ...] = ()  # other keys that changed along with the claimed ones


@dataclass(frozen=True)
class Conclusion:
    name: str
    claim: str
    metric: str
    verdict: str  # confirmed / refuted / inconclusive / confounded
    evidence: list[Evidence]
    confounded: tuple[str, ...] = ()  # verdict confounded: the keys its evidence also changed
    isolate: str | None = None  # the sweep (sweeps/<name>.yaml) whose runs isolate the claim


def check_conclusions(report: Report, study: Mapping[str, Any]) -> list[Conclusion]:
    """Each of the study's claims against the report's runs of the study's dataset (module
    docstring); none when no claim has a piece of evidence there."""
    groups = [g for g in report.groups
              if g.n > 0 and g.config.get("data.name", study["data"]) == study["data"]]  # fmt: skip
    conclusions = [_conclusion(spec, groups, report) for spec in study["conclusions"]]
    return conclusions if any(c.evidence for c in conclusions) else []


def _conclusion(spec: Mapping[str, Any], groups: Sequence[Group], report: Report) -> Conclusion:
    metric, expect = spec["metric"], spec["expect"]
    wanted = spec.get("matched") or []
    evidence = [_matched_evidence(want, spec, groups, report)
                for want in ([wanted] if isinstance(wanted, Mapping) else wanted)]  # fmt: skip
    evidence = [e for e in evidence if e is not None]
    for first, second in spec.get("pairs") or []:
        for a, b in _paired_groups(groups, first, second):
            result = welch(a.values.get(metric, []), b.values.get(metric, []))
            what = f"{first} ({a.backend}, n={a.n}) vs {second} ({b.backend}, n={b.n})"
            other = tuple(k for k in setting_diff(a, b) if k not in (spec.get("about") or []))
            evidence.append(Evidence(
                what, result, "confounded" if other else claim_verdict(result, expect),
                _pair_note(other, spec.get("about")), confounded=other,
            ))  # fmt: skip
    verdict = overall_verdict(evidence)
    keys = sorted({k for e in evidence for k in e.confounded}) if verdict == "confounded" else []
    return Conclusion(spec["name"], spec["claim"], metric, verdict, evidence, tuple(keys),
                      spec.get("isolate"))  # fmt: skip


def _matched_evidence(
    want: Mapping[str, Any], spec: Mapping[str, Any], groups: Sequence[Group], report: Report
) -> Evidence | None:
    """The claim's two levels of a factor compared on matched runs, in the claim's direction:
    the factorial ANOVA's main effect where the runs form a factorial, else the matched Welch
    comparison (mnistlab.report.stats); None when no run is matched."""
    factor, metric = want["factor"], spec["metric"]
    level, vs = value_text(want["level"]), value_text(want["vs"])
    if factor not in report.factors:
        return None
    obs = [Obs(g.levels, i, v) for g in groups if factor in g.levels
           for i, v in enumerate(g.values.get(metric, []))]  # fmt: skip
    factorial = (None if named_experiments(groups)
                 else factorial_analysis(obs, level_orders(obs, report.factors), metric))
    what = f"{factor}={level} vs {factor}={vs}"
    if factorial is not None and factor in factorial.factors:
        result = factorial.main_effect(factor, level, vs)
        design = " × ".join(factorial.factors)
        note = (f"main effect in the factorial ANOVA ({design}, {factorial.runs} runs), "
                "averaged over the other factors' levels")
    else:
        samples = matched_samples(obs, factor, level, vs)
        result = None if samples is None else welch(samples[0], samples[1])
        note = "" if samples is None else (
            f"matched over {samples[2]} combination(s) of the other factors")
    if result is None:
        return None
    about = spec.get("about") or []
    other = tuple(k for k in report.confounded.get(factor, ()) if k not in about)
    if other:
        note += f"; {factor} changed along with {', '.join(other)}"
    verdict = "confounded" if other else claim_verdict(result, spec["expect"])
    return Evidence(what, result, verdict, note, matched=True, confounded=other)


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


def _pair_note(other: Sequence[str], about: Sequence[str] | None) -> str:
    """Which other keys the two groups differ in: the comparison is not isolated then."""
    if not other:
        return f"differ only in {', '.join(about)}" if about else "same settings"
    return f"also differ in {', '.join(other)}: not an isolated comparison"


def overall_verdict(evidence: Sequence[Evidence]) -> str:
    """Isolated evidence decides: matched levels first, else pairs that differ in the claimed
    keys alone; confirmed (refuted) when some of it confirms (refutes) and none says the
    opposite. With only confounded evidence: confounded, never confirmed or refuted."""
    isolated = [e for e in evidence if not e.confounded and e.result.tested]
    deciding = [e.verdict for e in isolated if e.matched] or [e.verdict for e in isolated]
    if deciding:
        for verdict, opposite in (("confirmed", "refuted"), ("refuted", "confirmed")):
            if verdict in deciding and opposite not in deciding:
                return verdict
        return "inconclusive"
    return "confounded" if any(e.confounded for e in evidence) else "inconclusive"


def verdict_text(c: Conclusion) -> str:
    """The verdict as report.md's list gives it; a confounded one says how to isolate it."""
    if c.verdict != "confounded":
        return f"**{c.verdict}**"
    text = f"**confounded** with {', '.join(c.confounded)}: no runs differ in the claimed keys"
    text += " alone"
    if c.isolate:
        text += f"; `python train.py -m sweeps={c.isolate}` isolates it"
    return text


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
        for i, e in enumerate(c.evidence):
            rows.append({
                **(head if i == 0 else {"claim": "", "verdict": ""}), "evidence": e.what,
                "metric": c.metric, **diff_cells(e.result), "says": e.verdict, "note": e.note,
            })  # fmt: skip
    return rows, columns


CONCLUSIONS_RULE = (
    "Each piece of evidence is a test of the claimed difference: confirmed when it lies in the "
    "claimed direction with p < 0.05, refuted when opposite with p < 0.05, else inconclusive. "
    "Evidence is *isolated* when the runs compared differ in the claimed keys alone: a "
    "factor's levels on matched runs (the factorial ANOVA's main effect where the runs form a "
    "factorial, else Welch's test over the strata that hold both levels), or two experiments "
    "that differ in nothing else. Isolated evidence decides (matched levels first): confirmed "
    "(refuted) when some of it confirms (refutes) the claim and none says the opposite. "
    "Evidence whose runs also differ in other keys is *confounded*: it cannot tell the "
    "claimed cause from the others, so a claim with only such evidence is confounded, never "
    "confirmed or refuted, and the sweep that would isolate it is named."
)


def study_section(report: Report) -> Section | None:
    """The study's numbers beside ours, when runs of its experiments are in the report, and
    its claims checked, when any run speaks to them."""
    study = load_study()
    rows = study_rows(report.groups, study)
    conclusions = check_conclusions(report, study)
    if not rows and not conclusions:
        return None
    lines: list[str] = []
    tables = []
    if rows:
        table, columns = study_table(rows)
        lines += [
            "## Study vs measured",
            "",
            "The study's reported accuracies (../shared/SEED.md, `study/results.yaml`) beside "
            "our group means ± the 95 % CI half-width; deviations name the study's "
            "hyperparameters our runs did not use.",
            "",
            *markdown_lines(table, columns),
            "",
        ]
        tables.append((table, columns, "study vs measured (mean ± 95 % CI)"))
    if conclusions:
        claims, claim_columns = conclusion_table(conclusions)
        lines += ["### The study's conclusions" if rows else "## The study's conclusions", "",
                  CONCLUSIONS_RULE, ""]  # fmt: skip
        lines += [f"- **{c.name}** ({c.claim}): {verdict_text(c)}"
                  for c in conclusions if c.evidence]  # fmt: skip
        silent = [c.name for c in conclusions if not c.evidence]
        if silent:
            lines.append(f"- no run here speaks to {', '.join(silent)}")
        lines += ["", *markdown_lines(claims, claim_columns)]
        tables.append((claims, claim_columns, "the study's conclusions"))
    marks = {r.experiment: r.reported["test_acc"] for r in rows
             if r.reported["test_acc"] is not None}  # fmt: skip
    return Section(markdown=lines, tables=tables, marks=marks,
                   marks_label="study" if marks else "")
