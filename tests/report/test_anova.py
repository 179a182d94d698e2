"""The factorial analysis (mnistlab.report.anova): the two-way ANOVA against the textbook's sums
of squares, planted effects found, null data rejected at no more than the promised rate, and
designs that are no factorial left alone."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mnistlab.report.anova import factorial_analysis
from mnistlab.report.results import Report
from mnistlab.report.stats import Obs
from tests.report.test_report import SEEDS, TEST_ACC, assert_png, build_seeded

OPTIMIZERS, AUGS = ("adam", "rmsprop"), ("none", "flip", "shift_rotate")
L2 = ("0", "0.0001", "0.001")
LEVELS = {"optimizer": list(OPTIMIZERS), "aug": list(AUGS), "l2": list(L2)}
TERMS = {("optimizer",), ("aug",), ("l2",), ("optimizer", "aug"), ("optimizer", "l2"),
         ("aug", "l2"), ("optimizer", "aug", "l2")}  # fmt: skip
NOISE = 0.002  # the seeds' spread of a test accuracy


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    return build_seeded(tmp_path_factory.mktemp("seeded"))


def generated(rng: np.random.Generator, l2_effect: float = 0.0, interaction: float = 0.0,
              seeds: int = 3) -> list[Obs]:  # fmt: skip
    """A 2 x 3 x 3 factorial with ``seeds`` runs a cell: a main effect of L2 (each step up adds
    ``l2_effect``) and a pure optimizer x aug interaction (Adam gains ``interaction`` with flips
    and loses it with none: no main effect of either), plus Gaussian noise."""
    obs = []
    for opt, aug, l2 in itertools.product(OPTIMIZERS, AUGS, L2):
        sign = 1 if opt == "adam" else -1
        mean = 0.98 + l2_effect * L2.index(l2) + sign * interaction * {"flip": 1, "none": -1,
                                                                       "shift_rotate": 0}[aug]
        for seed in range(seeds):
            value = mean + rng.normal(0, NOISE)
            obs.append(Obs({"optimizer": opt, "aug": aug, "l2": l2}, seed, value))
    return obs


def significant(obs: list[Obs]) -> set[tuple[str, ...]]:
    f = factorial_analysis(obs, LEVELS)
    assert f is not None and {t.factors for t in f.terms} == TERMS
    return {t.factors for t in f.terms if t.p < 0.05}


def test_two_way_anova_is_the_textbooks(seeded: tuple[Path, Report]) -> None:
    """2 optimizers x 2 augmentations x 3 seeds: sums of squares by hand, F and p from them,
    and a main effect's interval from the pooled within-cell variance."""
    root, report = seeded
    f = report.factorial
    assert f is not None and f.factors == ["optimizer.name", "aug.name"]
    assert (f.runs, f.per_cell, f.residual_df) == (12, (3, 3), 8)
    cells = {k: np.array(v) for k, v in TEST_ACC.items()}
    grand = np.mean([*cells.values()])
    opt_means = {o: np.mean([cells[o, a] for a in ("none", "flip")]) for o in ("adam", "rmsprop")}
    aug_means = {a: np.mean([cells[o, a] for o in ("adam", "rmsprop")]) for a in ("none", "flip")}
    ss_within = sum(((v - v.mean()) ** 2).sum() for v in cells.values())
    mse = ss_within / 8
    ss_opt = 6 * sum((m - grand) ** 2 for m in opt_means.values())
    ss_aug = 6 * sum((m - grand) ** 2 for m in aug_means.values())
    ss_cells = 3 * sum((v.mean() - grand) ** 2 for v in cells.values())
    expected = {("optimizer.name",): ss_opt, ("aug.name",): ss_aug,
                ("optimizer.name", "aug.name"): ss_cells - ss_opt - ss_aug}  # fmt: skip
    assert f.mse == pytest.approx(mse)
    for term in f.terms:
        ss = expected[term.factors]
        assert term.df == 1 and term.sum_sq == pytest.approx(ss)
        assert term.f == pytest.approx(ss / mse)
        assert term.p == pytest.approx(stats.f.sf(ss / mse, 1, 8))
    adam = f.main_effect("optimizer.name", "adam", "rmsprop")
    diff = opt_means["adam"] - opt_means["rmsprop"]
    half = stats.t.ppf(0.975, 8) * np.sqrt(mse * (1 / 6 + 1 / 6))
    assert adam is not None and adam.diff == pytest.approx(diff)
    assert (adam.ci_low, adam.ci_high) == pytest.approx((diff - half, diff + half))
    assert adam.p < 0.05 and f.term("optimizer.name").significant
    assert f.main_effect("optimizer.name", "rmsprop", "adam").diff == pytest.approx(-diff)

    md = (root / "report.md").read_text()
    assert "## Factorial analysis of test accuracy" in md
    assert "![interactions](interaction.png)" in md
    rows = list(csv.DictReader((root / "anova.csv").open()))
    [opt_row] = [r for r in rows if r["row"] == "term" and r["term"] == "optimizer.name"]
    assert float(opt_row["F"]) == pytest.approx(ss_opt / mse)
    assert any(r["row"] == "interaction" for r in rows)
    assert_png(report.paths["interaction.png"])


def test_a_planted_main_effect_and_interaction_are_found() -> None:
    """Over 20 generated datasets both planted terms are found every time, and the five terms
    with no effect are significant no more often than the 5 % the test promises allows."""
    false_positives = 0
    for i in range(20):
        found = significant(generated(np.random.default_rng(i), l2_effect=0.003,
                                      interaction=0.003))  # fmt: skip
        assert {("l2",), ("optimizer", "aug")} <= found
        false_positives += len(found - {("l2",), ("optimizer", "aug")})
    assert false_positives <= stats.binom.ppf(0.999, 20 * 5, 0.05)


def test_null_datasets_are_rejected_at_most_at_the_promised_rate() -> None:
    rejections = sum(len(significant(generated(np.random.default_rng(100 + i))))
                     for i in range(20))  # fmt: skip
    assert rejections <= stats.binom.ppf(0.999, 20 * len(TERMS), 0.05)


def test_the_interaction_contrasts_say_where_adams_advantage_changes() -> None:
    f = factorial_analysis(generated(np.random.default_rng(7), interaction=0.003), LEVELS)
    assert f is not None
    simple = {c.what: c.result for c in f.contrasts if c.kind == "simple"
              and c.factors == ("optimizer", "aug")}  # fmt: skip
    # Adam's advantage is +2 x 0.003 with flips, -2 x 0.003 without augmentation, 0 otherwise
    assert simple["adam - rmsprop at flip"].diff == pytest.approx(0.006, abs=0.003)
    assert simple["adam - rmsprop at none"].diff == pytest.approx(-0.006, abs=0.003)
    assert simple["adam - rmsprop at flip"].ci_low > 0 > simple["adam - rmsprop at none"].ci_high
    [contrast] = [c.result for c in f.contrasts
                  if c.what == "(adam - rmsprop) at none - at flip"]  # fmt: skip
    assert contrast.ci_high < 0 and contrast.p < 0.05
    means = f.cell_means("optimizer", "aug")
    assert means[("adam", "flip")][0] > means[("rmsprop", "flip")][0]
    mean, low, high = means[("adam", "flip")]
    assert low < mean < high


def test_designs_that_are_no_replicated_factorial_get_no_analysis() -> None:
    rng = np.random.default_rng(0)
    full = generated(rng)
    missing_cell = [o for o in full if (o.levels["aug"], o.levels["l2"]) != ("flip", "0")]
    assert factorial_analysis(missing_cell, LEVELS) is None
    assert factorial_analysis(generated(rng, seeds=1), LEVELS) is None  # nothing measures noise
    one_factor = [Obs({"aug": a}, s, 0.98 + rng.normal(0, NOISE)) for a in AUGS for s in SEEDS]
    f = factorial_analysis(one_factor, {"aug": list(AUGS)})
    assert f is not None and [t.factors for t in f.terms] == [("aug",)]  # a one-way ANOVA
    assert not any(c.kind == "interaction" for c in f.contrasts)
