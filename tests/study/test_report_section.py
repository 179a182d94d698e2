"""The student study's report section (mnistlab.study, a mnistlab.report plug-in): its numbers
beside ours, its claims checked by Welch's test, and the 6<->9 confusions by augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnistlab.report import Report, write_report
from mnistlab.report.runs import find_runs, load_run
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


def test_study_conclusions_get_verdicts_from_welch(study_report: tuple[Path, Report]) -> None:
    _, report = study_report
    conclusions = check_conclusions(report.groups, report.effects, load_study())
    verdicts = {c.name: c.verdict for c in conclusions}
    assert verdicts == {
        "flips_hurt": "confirmed",  # tf_run2 clearly below tf_run3
        "adam_beats_rmsprop": "confirmed",
        "regularisation_narrows_gap": "inconclusive",  # gaps within the seed noise
    }
    flips = next(c for c in conclusions if c.name == "flips_hurt")
    [evidence] = flips.evidence  # no PyTorch runs, and aug is not a matched factor here
    tests = STUDY_TF["study/tf_run2"][0], STUDY_TF["study/tf_run3"][0]
    diff, _, _, p = welch_by_hand(list(tests[0]), list(tests[1]))
    assert evidence.result.diff == pytest.approx(diff) and diff < 0
    assert evidence.result.p == pytest.approx(p, rel=1e-9) and p < 0.05
    assert evidence.note.startswith("also differ in ")  # run 2 and 3 differ in more than aug
    assert "optimizer.name" in evidence.note and "model.dropout" in evidence.note
    gap = next(c for c in conclusions if c.name == "regularisation_narrows_gap")
    assert [e.verdict for e in gap.evidence] == ["inconclusive", "inconclusive"]


def test_six_nine_confusions_per_aug_level(study_report: tuple[Path, Report]) -> None:
    root, report = study_report
    runs = [load_run(path, root) for path in find_runs([root])]
    assert six_nine_counts(runs) == {"flip": [51.0, 52.0, 53.0], "shift_rotate": [6.0, 7.0, 8.0]}
    md = (root / "report.md").read_text()
    section = md.split("## 6<->9 confusions")[1].split("##")[0]
    assert "| flip | 3 | 52.0 ± 1.0 [49.5, 54.5] |" in section and "flip confuses more" in section


