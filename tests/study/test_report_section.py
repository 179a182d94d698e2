"""The student study's report section (mnistlab.study, a mnistlab.report plug-in): its numbers
beside ours, its claims checked by Welch's test, and the 6<->9 confusions by augmentation."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest

from mnistlab.report.results import Report
from mnistlab.report.runs import find_runs, load_run
from mnistlab.report.write import write_report
from mnistlab.study.claims import check_conclusions, load_study, study_rows
from mnistlab.study.six_nine import six_nine_counts
from tests.conftest import make_run
from tests.report.test_report import SEEDS, by_hand, confusion_csv, welch_by_hand

STUDY_TF = {
    "study/tf_run1": ((0.975, 0.978, 0.972), (0.010, -0.004, 0.006)),
    "study/tf_run2": ((0.950, 0.953, 0.948), (0.002, 0.012, -0.006)),
    "study/tf_run3": ((0.986, 0.988, 0.987), (0.008, -0.002, 0.004)),
}



@pytest.fixture(scope="module")
def study_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    """Three seeds of each TensorFlow experiment, with the study's hyperparameters except a
    5000-image train subset; flip runs confuse 6 and 9 far more often."""
    root = tmp_path_factory.mktemp("study")
    specs = load_study()["runs"]
    for exp, (tests, gaps) in STUDY_TF.items():
        config = dict(specs[exp]["config"])
        aug = config["aug.name"]
        for seed, test, gap in zip(SEEDS, tests, gaps, strict=True):
            results = dict(test_acc=test, val_acc=test + 0.001, train_acc=test + 0.001 + gap,
                           best_val_acc=test + 0.001, best_epoch=5, wall_seconds=10.0)
            six_nine = {"flip": (30 + seed, 20), "shift_rotate": (3, 2 + seed)}.get(aug)
            make_run(root / f"{exp}-{seed}", optimizer=config["optimizer.name"], aug=aug,
                     backend=config["backend.name"], seed=seed, results=results,
                     settings={**config, "experiment": exp, "data.train_subset": 5000},
                     confusion=None if six_nine is None else confusion_csv(*six_nine,
                                                                          header=seed != 2),
                     overrides=["sweeps=study_runs", f"experiment={exp}"])  # fmt: skip
    return root, write_report([root], root, show=False)


def test_study_vs_measured_table(study_report: tuple[Path, Report]) -> None:
    root, report = study_report
    rows = {r.experiment: r for r in study_rows(report.groups, load_study())}
    assert list(rows) == ["study/tf_run1", "study/tf_run2", "study/tf_run3"]
    best = rows["study/tf_run3"]
    assert (best.study_run, best.framework, best.group.backend, best.group.n) == (
        "tf_run3", "TensorFlow", "keras", 3)  # fmt: skip
    assert best.reported == {"train_acc": 0.968, "val_acc": 0.9804, "test_acc": 0.987}
    assert best.deviations == ["data.train_subset=5000 (study: None)"]
    mean, _, _, high = by_hand(list(STUDY_TF["study/tf_run3"][0]))
    md = (root / "report.md").read_text()
    assert "## Study vs measured" in md
    line = next(x for x in md.splitlines() if x.startswith("| study/tf_run3 |"))
    assert f"| 0.9870 | {mean:.4f} ± {high - mean:.4f} |" in line
    assert "| - |" in next(x for x in md.splitlines() if x.startswith("| study/tf_run1 |"))


def test_claims_whose_only_evidence_is_confounded_are_confounded(
    study_report: tuple[Path, Report],
) -> None:
    """tf_run2 and tf_run3 differ in the optimizer, the augmentation, L2 and dropout at once: the
    one comparison cannot confirm "flips hurt" and "Adam beats RMSprop" both."""
    root, report = study_report
    conclusions = {c.name: c for c in check_conclusions(report, load_study())}
    assert {name: c.verdict for name, c in conclusions.items()} == dict.fromkeys(
        ["flips_hurt", "adam_beats_rmsprop", "regularisation_narrows_gap"], "confounded")
    flips = conclusions["flips_hurt"]
    assert flips.confounded == ("model.dropout", "optimizer.name", "regularization.weight")
    assert flips.isolate == "ablations_mnist"
    [evidence] = flips.evidence  # no PyTorch runs, and aug is not a matched factor here
    tests = STUDY_TF["study/tf_run2"][0], STUDY_TF["study/tf_run3"][0]
    diff, _, _, p = welch_by_hand(list(tests[0]), list(tests[1]))
    assert evidence.result.diff == pytest.approx(diff) and diff < 0
    assert evidence.result.p == pytest.approx(p, rel=1e-9) and p < 0.05  # clear, yet confounded
    assert evidence.verdict == "confounded" and evidence.note.startswith("also differ in ")
    adam = conclusions["adam_beats_rmsprop"]
    assert adam.confounded == ("aug.name", "model.dropout", "regularization.weight")
    gap = conclusions["regularisation_narrows_gap"]
    assert "trainer.max_epochs" in gap.confounded and "aug.name" in gap.confounded
    md = (root / "report.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("- **flips_hurt**"))
    assert "**confounded** with model.dropout, optimizer.name, regularization.weight" in line
    assert "`python train.py -m sweeps=ablations_mnist` isolates it" in line
    assert "confirmed" not in line


def test_named_experiments_label_groups_and_mark_the_studys_figure(
    study_report: tuple[Path, Report],
) -> None:
    _, report = study_report
    assert sorted(g.label for g in report.groups) == ["tf_run1", "tf_run2", "tf_run3"]
    assert report.factorial is None  # recipes, not a design
    [section] = [s for s in report.sections if s.marks]
    assert section.marks == {"study/tf_run3": 0.987} and section.marks_label == "study"


def test_six_nine_confusions_per_aug_level(study_report: tuple[Path, Report]) -> None:
    root, report = study_report
    runs = [load_run(path, root) for path in find_runs([root])]
    assert six_nine_counts(runs) == {"flip": [51.0, 52.0, 53.0], "shift_rotate": [6.0, 7.0, 8.0]}
    md = (root / "report.md").read_text()
    section = md.split("## 6<->9 confusions")[1].split("##")[0]
    assert "| flip | 3 | 52.0 ± 1.0 [49.5, 54.5] |" in section and "flip confuses more" in section




def test_a_factorial_sweep_isolates_the_claims(tmp_path: Path) -> None:
    """optimizer x aug x L2 on the default recipe, 2 seeds a cell, no named experiments: flips
    are planted 0.01 below shift + rotation and Adam 0.004 above RMSprop, L2 leaves the gap
    alone. The factorial ANOVA's main effects decide; nothing is confounded."""
    rng = np.random.default_rng(3)
    for opt, aug, l2, seed in itertools.product(("adam", "rmsprop"),
                                                ("none", "flip", "shift_rotate"),
                                                (0.0, 0.0001, 0.001), (1, 2)):  # fmt: skip
        test = (0.985 + (0.004 if opt == "adam" else 0) - (0.01 if aug == "flip" else 0)
                + rng.normal(0, 0.001))  # fmt: skip
        gap = -0.01 + rng.normal(0, 0.002)
        results = dict(test_acc=test, val_acc=test, train_acc=test + gap, best_val_acc=test,
                       best_epoch=5, wall_seconds=10.0)  # fmt: skip
        make_run(tmp_path / f"{opt}-{aug}-{l2}-{seed}", optimizer=opt, aug=aug, seed=seed,
                 results=results, settings={"regularization.weight": l2})  # fmt: skip
    report = write_report([tmp_path], tmp_path, show=False)
    assert report.factorial is not None
    assert report.factorial.factors == ["optimizer.name", "aug.name", "regularization.weight"]
    conclusions = {c.name: c for c in check_conclusions(report, load_study())}
    assert {n: c.verdict for n, c in conclusions.items()} == {
        "flips_hurt": "confirmed", "adam_beats_rmsprop": "confirmed",
        "regularisation_narrows_gap": "inconclusive"}  # fmt: skip
    [flips] = conclusions["flips_hurt"].evidence
    assert flips.matched and not flips.confounded and "factorial ANOVA" in flips.note
    anova = report.factorial.main_effect("aug.name", "flip", "shift_rotate")
    assert anova is not None and (flips.result.diff, flips.result.p) == pytest.approx(
        (anova.diff, anova.p))
    assert flips.result.diff == pytest.approx(-0.01, abs=0.002) and flips.result.ci_high < 0
    assert len(conclusions["regularisation_narrows_gap"].evidence) == 2  # 1e-4 and 1e-3 vs 0
    md = (tmp_path / "report.md").read_text()
    assert "## The study's conclusions" in md and "## Study vs measured" not in md
    assert "## Factorial analysis of test accuracy" in md


def test_a_report_rebuilt_from_its_runs_csv_keeps_experiments_and_verdicts(
    study_report: tuple[Path, Report], tmp_path: Path,
) -> None:
    root, report = study_report
    assert next(csv.DictReader((root / "runs.csv").open()))["experiment"].startswith("study/")
    again = write_report([root / "runs.csv"], tmp_path, show=False)
    assert [g.label for g in again.groups] == [g.label for g in report.groups]
    before = [(c.name, c.verdict, c.confounded) for c in check_conclusions(report, load_study())]
    after = [(c.name, c.verdict, c.confounded) for c in check_conclusions(again, load_study())]
    assert after == before
    for name in ("groups.csv", "effects.csv"):
        assert (tmp_path / name).read_text() == (root / name).read_text()
    assert "curves.png" not in again.paths and "runs read from the table" in (
        tmp_path / "report.md").read_text()
