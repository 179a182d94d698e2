"""mnistlab.report on hand-built run directories: exact tables, overfit flags, groups of seeds
and their statistics against textbook formulas, matched effects, the study's numbers and claims,
figures. The run directories' configs are composed from conf/ (tests/conftest.py's make_run)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
import yaml
from scipy import stats

from mnistlab.report.factors import factor_keys, varying_keys
from mnistlab.report.plots import epoch_band
from mnistlab.report.results import OVERFIT_GAP, Report, overfit_reason
from mnistlab.report.runs import load_run, read_confusion, read_named_confusion
from mnistlab.report.stats import Obs, factor_effects, matched_samples
from mnistlab.report.write import write_report
from tests.conftest import FALLING, PNG_SIGNATURE, make_run

# job -> (optimizer, lr, aug, summary results, train_loss, val_loss); None losses: no metrics.csv
JOBS: dict[str, tuple[str, float, str, dict[str, Any], list | None, list | None]] = {
    # val_loss rises only twice in a row: not overfitting; small positive gap
    "0": ("adam", 0.001, "none",
          dict(train_acc=0.975, val_acc=0.97, test_acc=0.968, best_val_acc=0.972, best_epoch=3,
               wall_seconds=12.5),
          FALLING, [0.30, 0.20, 0.22, 0.24, 0.23]),
    # train below val (augmentation on while training): a negative gap never counts
    "1": ("adam", 0.001, "flip",
          dict(train_acc=0.90, val_acc=0.975, test_acc=0.977, best_val_acc=0.975, best_epoch=5,
               wall_seconds=14.0),
          FALLING, [0.30, 0.20, 0.15, 0.12, 0.10]),
    # overfits by the val-loss rule: val_loss rises 3 epochs in a row while train_loss falls
    "2": ("rmsprop", 0.001, "none",
          dict(train_acc=0.96, val_acc=0.965, test_acc=0.96, best_val_acc=0.97, best_epoch=2,
               wall_seconds=13.0),
          FALLING, [0.30, 0.25, 0.27, 0.29, 0.31]),
    # overfits by the gap rule only
    "3": ("rmsprop", 0.001, "flip",
          dict(train_acc=0.99, val_acc=0.93, test_acc=0.925, best_val_acc=0.935, best_epoch=4,
               wall_seconds=15.25),
          FALLING, [0.30, 0.28, 0.26, 0.25, 0.24]),
    # failed before writing metrics.csv
    "4": ("sgd", 0.01, "none",
          dict(train_acc=None, val_acc=None, test_acc=None, best_val_acc=None, best_epoch=None,
               wall_seconds=3.2),
          None, None),
}  # fmt: skip
FAILED_ERROR = "FloatingPointError: loss is nan at epoch 2"

EXPECTED_CSV = [
    ["run", "optimizer.name", "optimizer.lr", "aug.name", "status", "epochs", "train_acc",
     "val_acc", "test_acc", "best_val_acc", "best_epoch", "gap", "wall_seconds", "overfit",
     "error"],
    ["1", "adam", "0.001", "flip", "completed", "5", "0.9", "0.975", "0.977", "0.975", "5",
     "-0.075", "14.0", "no", ""],
    ["0", "adam", "0.001", "none", "completed", "5", "0.975", "0.97", "0.968", "0.972", "3",
     "0.005", "12.5", "no", ""],
    ["2", "rmsprop", "0.001", "none", "completed", "5", "0.96", "0.965", "0.96", "0.97", "2",
     "-0.005", "13.0", "yes", ""],
    ["3", "rmsprop", "0.001", "flip", "completed", "5", "0.99", "0.93", "0.925", "0.935", "4",
     "0.06", "15.25", "yes", ""],
    ["4", "sgd", "0.01", "none", "failed", "0", "", "", "", "", "", "", "3.2", "no",
     FAILED_ERROR],
]  # fmt: skip


def build_sweep(outputs: Path) -> Path:
    """Five jobs of an optimizer x aug sweep, one failed, as under outputs/multirun/."""
    root = outputs / "multirun" / "2024-05-01" / "12-00-00"
    for job, (opt, lr, aug, results, train_loss, val_loss) in JOBS.items():
        make_run(root / job, optimizer=opt, lr=lr, aug=aug, results=results,
                 train_loss=train_loss, val_loss=val_loss,
                 error=FAILED_ERROR if job == "4" else None)  # fmt: skip
    (root / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    # summary.json files a logger or checkpointer might leave: must not count as runs
    for decoy in ("0/wandb/run-1/files", "0/checkpoints"):
        (root / decoy).mkdir(parents=True)
        (root / decoy / "summary.json").write_text("{}")
    return root


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    return build_sweep(tmp_path)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    """The sweep and its report, written once: plotting is the slow part."""
    root = build_sweep(tmp_path_factory.mktemp("outputs"))
    return root, write_report([root], root, show=False)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_sweep_table_is_exact(swept: tuple[Path, Report]) -> None:
    sweep, report = swept
    assert read_csv(sweep / "runs.csv") == EXPECTED_CSV
    assert report.columns == EXPECTED_CSV[0]
    # aug.horizontal_p exists only for flip (optimizer.rho only for rmsprop): it follows from
    # aug.name, so it is no column of its own
    assert report.varying == ["optimizer.name", "optimizer.lr", "aug.name"]
    # factors come from the resolved configs; lr (0.01 only with sgd) and each option's own keys
    # follow the names
    assert report.factors == ["optimizer.name", "aug.name"]
    assert report.folded == {
        "optimizer.name": ["optimizer.lr", "optimizer.beta1", "optimizer.beta2", "optimizer.eps",
                           "optimizer.rho", "optimizer.momentum", "optimizer.nesterov"],
        "aug.name": ["aug.horizontal_p", "aug.vertical_p"],
    }  # fmt: skip
    assert [r["run"] for r in report.rows] == ["1", "0", "2", "3", "4"]
    assert {r["run"]: r["overfit"] for r in report.rows} == {
        "1": "no", "0": "no", "2": "yes", "3": "yes", "4": "no"
    }  # fmt: skip
    assert [r["run"] for r in report.failed] == ["4"]
    assert report.rows[-1]["error"] == FAILED_ERROR
    assert report.reasons == {
        "2": "val_loss rose 0.2500 -> 0.3100 while train_loss fell 0.3000 -> 0.1200 (epochs 2-5)",
        "3": f"train_acc - val_acc = 0.0600 > {OVERFIT_GAP}",
    }
    assert set(report.paths) == {
        "runs.csv", "groups.csv", "effects.csv", "report.md", "curves.png", "ablation.png"
    }  # fmt: skip
    assert sorted(p.name for p in sweep.iterdir() if p.name.startswith(".")) == []  # no tmp files


def test_report_md(swept: tuple[Path, Report]) -> None:
    sweep, _ = swept
    md = (sweep / "report.md").read_text()
    lines = md.splitlines()
    assert lines[0].startswith("# ")
    header = "| " + " | ".join(EXPECTED_CSV[0]) + " |"
    start = lines.index(header)
    table = lines[start + 2 : start + 7]
    assert table[0] == (
        "| 1 | adam | 0.001 | flip | completed | 5 | 0.9000 | 0.9750 | 0.9770 | 0.9750 | 5 "
        "| -0.0750 | 14.0 | no | - |"
    )
    assert table[4] == (
        "| 4 | sgd | 0.01 | none | failed | 0 | - | - | - | - | - | - | 3.2 | no "
        f"| {FAILED_ERROR} |"
    )
    failed = md.split("## Failed jobs")[1].split("##")[0]
    assert f"- `4` (failed): {FAILED_ERROR}" in failed
    assert "`0`" not in failed
    overfit = md.split("## Overfitting")[1].split("##")[0]
    assert "- `2`: val_loss rose" in overfit
    assert "- `3`: train_acc - val_acc = 0.0600" in overfit
    assert "`0`" not in overfit and "`1`" not in overfit


def test_plots_are_pngs(swept: tuple[Path, Report]) -> None:
    _, report = swept
    for name in ("curves.png", "ablation.png"):
        data = report.paths[name].read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_show_prints_rich_table(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_report([sweep], sweep, show=True)
    out = capsys.readouterr().out
    assert "optimizer.name" in out and "rmsprop" in out and "failed" in out


@pytest.mark.parametrize(
    ("val_loss", "train_loss", "gap", "flagged"),
    [
        ([0.3, 0.2, 0.22, 0.24], [0.5, 0.4, 0.3, 0.2], None, False),  # 2 rises: too short
        ([0.3, 0.2, 0.22, 0.24, 0.26], [0.5, 0.4, 0.3, 0.2, 0.1], None, True),  # 3 rises
        ([0.3, 0.2, 0.22, 0.24, 0.26], [0.5, 0.4, 0.3, 0.35, 0.1], None, False),  # train rose
        (FALLING, FALLING, OVERFIT_GAP, False),  # gap must exceed the threshold
        (FALLING, FALLING, OVERFIT_GAP + 0.001, True),
        (FALLING, FALLING, -0.2, False),  # train below val is normal here
        ([], [], None, False),  # failed job without metrics
    ],
)
def test_overfit_rule(val_loss, train_loss, gap, flagged) -> None:
    metrics = {"val_loss": val_loss, "train_loss": train_loss}
    assert (overfit_reason(metrics, gap) is not None) is flagged


def test_overfit_reason_names_both_rules_and_the_whole_stretch() -> None:
    metrics = {
        "epoch": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "val_loss": [0.3, 0.2, 0.21, 0.22, 0.23, 0.24],
        "train_loss": [0.5, 0.4, 0.3, 0.2, 0.1, 0.05],
    }
    assert overfit_reason(metrics, 0.07) == (
        "val_loss rose 0.2000 -> 0.2400 while train_loss fell 0.4000 -> 0.0500 (epochs 2-6); "
        f"train_acc - val_acc = 0.0700 > {OVERFIT_GAP}"
    )


def test_varying_keys_ignores_bookkeeping() -> None:
    a = {"optimizer.name": "adam", "paths.output": "/a", "logger.group": "a", "trainer.seed": 1}
    b = {"optimizer.name": "sgd", "paths.output": "/b", "logger.group": "b", "trainer.seed": 1}
    assert varying_keys([a, b]) == ["optimizer.name"]
    assert varying_keys([a]) == []
    assert varying_keys([a, None]) == []


def test_outputs_root_with_single_and_multi_runs(tmp_path: Path, sweep: Path) -> None:
    make_run(tmp_path / "runs" / "2024-05-02_09-00-00", overrides=[])
    report = write_report([tmp_path], tmp_path / "report", show=False)
    names = [r["run"] for r in report.rows]
    # the single run ties with job 1 at val_acc 0.975: ties go by name
    assert names[:2] == ["../multirun/2024-05-01/12-00-00/1", "../runs/2024-05-02_09-00-00"]
    assert len(names) == 6 and names[-1] == "../multirun/2024-05-01/12-00-00/4"


def test_failed_job_sorts_last_even_with_metrics(tmp_path: Path) -> None:
    """A job that diverged after some epochs has a val_acc but is still a failure."""
    make_run(tmp_path / "a", optimizer="sgd", results=dict(val_acc=0.5, wall_seconds=1.0))
    make_run(tmp_path / "b", results=dict(val_acc=0.9, wall_seconds=1.0), error="diverged")
    report = write_report([tmp_path], tmp_path, show=False)
    assert [(r["run"], r["status"]) for r in report.rows] == [("a", "completed"), ("b", "failed")]
    assert "Best: `a`" in report.paths["report.md"].read_text()


# ---------------------------------------------------------------------------- seeds and groups

T975_2 = 4.302652729911275  # t(0.975, df=2): the 95 % CI of a mean over 3 seeds
SEEDS = (1, 2, 3)
# (optimizer, aug) -> test accuracy per seed: Adam clearly ahead, flip vs none within the noise
TEST_ACC = {
    ("adam", "none"): (0.980, 0.982, 0.979),
    ("adam", "flip"): (0.975, 0.978, 0.976),
    ("rmsprop", "none"): (0.970, 0.968, 0.971),
    ("rmsprop", "flip"): (0.966, 0.969, 0.965),
}


def seed_results(test: float, seed: int, aug: str = "none") -> dict[str, Any]:
    """train and val follow test with their own wobble per seed, so every metric has a spread."""
    val = test + 0.001 * seed
    train = test + (-0.02 if aug == "flip" else 0.01) + 0.002 * seed**2
    return dict(train_acc=train, val_acc=val, test_acc=test, best_val_acc=val, best_epoch=5,
                wall_seconds=10.0)  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    return build_seeded(tmp_path_factory.mktemp("seeded"))


def build_seeded(root: Path) -> tuple[Path, Report]:
    """A 2 optimizers x 2 augs sweep over 3 seeds (12 runs) and its report."""
    for (opt, aug), accs in TEST_ACC.items():
        for seed, acc in zip(SEEDS, accs, strict=True):
            overrides = [f"optimizer={opt}", f"aug={aug}", f"trainer.seed={seed}"]
            make_run(root / f"{opt}-{aug}-{seed}", optimizer=opt, aug=aug, seed=seed,
                     results=seed_results(acc, seed, aug), overrides=overrides)  # fmt: skip
    return root, write_report([root], root, show=False)


def by_hand(values: list[float]) -> tuple[float, float, float, float]:
    """mean, sample std and the 95 % t interval of 3 values, from the textbook formulas."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = T975_2 * std / math.sqrt(len(values))
    return mean, std, mean - half, mean + half


def test_groups_pool_seeds_with_mean_std_and_t_interval(seeded: tuple[Path, Report]) -> None:
    root, report = seeded
    assert report.factors == ["optimizer.name", "aug.name"]  # the seed is never a factor...
    assert "trainer.seed" in report.varying  # ...but a column of the runs table
    assert len(read_csv(root / "runs.csv")) == 1 + 12  # still a row per run
    groups = {g.label: g for g in report.groups}
    assert set(groups) == {f"optimizer.name={o} aug.name={a}" for o, a in TEST_ACC}
    groups_csv = {row["group"]: row for row in csv.DictReader((root / "groups.csv").open())}
    md = (root / "report.md").read_text()
    for (opt, aug), accs in TEST_ACC.items():
        label = f"optimizer.name={opt} aug.name={aug}"
        group = groups[label]
        assert (group.n, group.failed, group.seeds) == (3, 0, [1, 2, 3])
        results = [seed_results(acc, seed, aug) for seed, acc in zip(SEEDS, accs, strict=True)]
        for metric in ("train_acc", "val_acc", "test_acc", "gap"):
            values = [r["train_acc"] - r["val_acc"] if metric == "gap" else r[metric]
                      for r in results]  # fmt: skip
            expected = by_hand(values)
            s = group.stats[metric]
            assert s.n == 3
            assert (s.mean, s.std, s.ci_low, s.ci_high) == pytest.approx(expected, abs=1e-9)
            row = groups_csv[label]
            assert row["n"] == "3"
            written = [float(row[f"{metric}_{k}"]) for k in ("mean", "std", "ci_low", "ci_high")]
            assert written == pytest.approx(expected, abs=1e-9)
        mean, std, low, high = by_hand(list(accs))
        assert f"{mean:.4f} ± {std:.4f} [{low:.4f}, {high:.4f}]" in md
    assert "trainer.seed=" not in md  # labels never name the seed


def test_single_run_group_has_no_std_or_interval(swept: tuple[Path, Report]) -> None:
    sweep, report = swept
    rows = list(csv.DictReader((sweep / "groups.csv").open()))
    assert len(rows) == len(report.groups) == 5
    best = rows[0]
    assert best["group"] == "optimizer.name=adam aug.name=flip" and best["n"] == "1"
    assert float(best["test_acc_mean"]) == 0.977
    assert best["test_acc_std"] == best["test_acc_ci_low"] == best["test_acc_ci_high"] == ""
    failed = rows[-1]
    assert (failed["n"], failed["failed"], failed["test_acc_mean"]) == ("0", "1", "")


def welch_by_hand(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """mean(a) - mean(b), its standard error, the Welch-Satterthwaite df and the two-sided p."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return ma - mb, se, df, 2 * stats.t.sf(abs((ma - mb) / se), df)


def test_effects_compare_matched_levels_by_welch(seeded: tuple[Path, Report]) -> None:
    root, report = seeded
    effects = {(e.factor, e.level, e.vs): e for e in report.effects}
    assert set(effects) == {("optimizer.name", "adam", "rmsprop"), ("aug.name", "flip", "none")}
    assert report.unmatched == 0
    adam = [*TEST_ACC["adam", "none"], *TEST_ACC["adam", "flip"]]
    rmsprop = [*TEST_ACC["rmsprop", "none"], *TEST_ACC["rmsprop", "flip"]]
    diff, se, df, p = welch_by_hand(adam, rmsprop)
    e = effects["optimizer.name", "adam", "rmsprop"]
    assert (e.strata, e.balanced, e.result.n_a, e.result.n_b) == (2, True, 6, 6)
    assert diff > 0 and e.result.diff == pytest.approx(diff)
    assert e.result.df == pytest.approx(df) and e.result.p == pytest.approx(p, rel=1e-9)
    half = stats.t.ppf(0.975, df) * se
    assert (e.result.ci_low, e.result.ci_high) == pytest.approx((diff - half, diff + half))
    assert p < 0.05 and e.verdict == "better"

    flip = [*TEST_ACC["adam", "flip"], *TEST_ACC["rmsprop", "flip"]]
    none = [*TEST_ACC["adam", "none"], *TEST_ACC["rmsprop", "none"]]
    diff, _, _, p = welch_by_hand(flip, none)
    e = effects["aug.name", "flip", "none"]
    assert diff < 0 and e.result.diff == pytest.approx(diff)
    assert e.result.p == pytest.approx(p, rel=1e-9) and p > 0.05
    assert e.verdict == "no clear difference at 6 vs 6 runs"

    rows = {(r["factor"], r["level"]): r for r in csv.DictReader((root / "effects.csv").open())}
    assert float(rows["aug.name", "flip"]["p"]) == pytest.approx(p, rel=1e-9)
    assert rows["optimizer.name", "adam"]["verdict"] == "better"
    md = (root / "report.md").read_text()
    assert "## Effects on test accuracy" in md and "matched" in md


def test_unbalanced_strata_are_trimmed_and_unmatched_levels_not_compared() -> None:
    def obs(opt: str, aug: str, seed: int, value: float) -> Obs:
        return Obs({"optimizer.name": opt, "aug.name": aug}, seed, value)

    runs = [
        obs("adam", "none", 3, 0.99), obs("adam", "none", 1, 0.98), obs("adam", "none", 2, 0.97),
        obs("sgd", "none", 1, 0.90), obs("sgd", "none", 2, 0.91),  # seed 3 failed
        obs("adam", "flip", 1, 0.96), obs("sgd", "flip", 1, 0.89), obs("sgd", "flip", 2, 0.88),
    ]  # fmt: skip
    a, b, strata, balanced = matched_samples(runs, "optimizer.name", "adam", "sgd")
    # none holds 3 adam and 2 sgd runs, flip 1 and 2: not the same shares, so each stratum keeps
    # its lowest seeds, as many of each level
    assert (strata, balanced) == (2, False)
    assert (sorted(a), sorted(b)) == ([0.96, 0.97, 0.98], [0.89, 0.90, 0.91])
    # rmsprop ran only with shift_rotate: no stratum holds it with another optimizer
    runs.append(obs("rmsprop", "shift_rotate", 1, 0.95))
    levels = {"optimizer.name": ["adam", "rmsprop", "sgd"],
              "aug.name": ["flip", "none", "shift_rotate"]}  # fmt: skip
    effects, unmatched = factor_effects(runs, levels)
    assert [(e.factor, e.level, e.vs) for e in effects] == [
        ("optimizer.name", "adam", "sgd"), ("aug.name", "flip", "none")
    ]  # fmt: skip
    assert unmatched == 4  # adam/rmsprop, rmsprop/sgd, flip/shift_rotate, none/shift_rotate


def test_factor_keys_fold_what_follows_from_another_key() -> None:
    configs = [
        {"optimizer.name": "adam", "optimizer.beta1": 0.9,
         "regularization.name": "none", "regularization.weight": 0.0},
        {"optimizer.name": "rmsprop", "optimizer.rho": 0.9,
         "regularization.name": "l2", "regularization.weight": 0.001},
        {"optimizer.name": "adam", "optimizer.beta1": 0.9,
         "regularization.name": "l2", "regularization.weight": 0.0001},
        {"optimizer.name": "rmsprop", "optimizer.rho": 0.9,
         "regularization.name": "none", "regularization.weight": 0.0},
    ]  # fmt: skip
    # beta1/rho exist only for one optimizer; the L2 name follows from its weight (0 -> none)
    assert factor_keys(configs) == {
        "optimizer.name": ["optimizer.beta1", "optimizer.rho"],
        "regularization.weight": ["regularization.name"],
    }
    # two rho values within rmsprop: rho is a setting of its own, not a follower of the name
    configs = [{"optimizer.name": "adam"}, *({"optimizer.name": "rmsprop", "optimizer.rho": rho}
                                             for rho in (0.9, 0.8))]  # fmt: skip
    assert factor_keys(configs) == {"optimizer.name": [], "optimizer.rho": []}
    assert varying_keys(configs) == ["optimizer.name", "optimizer.rho"]


def test_groups_and_factors_come_from_resolved_configs_not_overrides(tmp_path: Path) -> None:
    """The study_runs sweep beside a cross-backend sweep: by their overrides the experiments'
    backend is "(default)", yet one ran on Keras and one on Lightning."""
    study_runs, cross = tmp_path / "study_runs", tmp_path / "cross"
    experiments = [("study/tf_run3", "keras"), ("study/pt_run3", "lightning")]
    for i, (exp, backend) in enumerate(experiments):
        make_run(study_runs / str(i), backend=backend,
                 settings={"experiment": exp, "sweeps": "study_runs"},
                 overrides=["sweeps=study_runs", f"experiment={exp}"])  # fmt: skip
    for i, backend in enumerate(["keras", "lightning"]):
        make_run(cross / str(i), backend=backend, overrides=[f"backend={backend}"])
    report = write_report([study_runs, cross], tmp_path, show=False)
    assert report.factors == ["backend.name"]
    assert report.folded == {"backend.name": ["backend.keras_backend"]}  # only keras has it
    assert {g.label: sorted(g.runs) for g in report.groups} == {
        "backend.name=keras": ["cross/0", "study_runs/0"],
        "backend.name=lightning": ["cross/1", "study_runs/1"],
    }
    md = report.paths["report.md"].read_text()
    assert "(default)" not in md and "sweeps=" not in md and "experiment=" not in md


def test_keys_that_change_no_result_are_never_factors(tmp_path: Path) -> None:
    for i in range(4):
        noise = {
            "trainer.progress_bar": i % 2 == 0, "logger.group": f"g{i}", "hydra.job.num": i,
            "sweeps": ["optimizer", "l2"][i % 2], "experiment": [None, "study/tf_run1"][i % 2],
            "data.dir": f"/data/{i}", "data.mirrors": [f"https://m{i}/"],
            "data.download": i < 2, "data.eval_batch_size": 500 * (i + 1),
        }  # fmt: skip
        noise["trainer.limit_train_batches"] = 10 if i % 2 else None  # changes results: a factor
        make_run(tmp_path / str(i), seed=i, settings=noise)
    report = write_report([tmp_path], tmp_path, show=False)
    assert report.factors == ["trainer.limit_train_batches"]
    assert report.varying == ["trainer.seed", "trainer.limit_train_batches"]
    assert sorted((g.label, g.n) for g in report.groups) == [
        ("trainer.limit_train_batches=10", 2), ("trainer.limit_train_batches=null", 2)
    ]  # fmt: skip


# ---------------------------------------------------------------------------- confusions


def confusion_csv(six_as_nine: float, nine_as_six: float, header: bool = True) -> str:
    """A 10x10 confusion.csv: 980 right per class, the given 6/9 mix-ups, in the trainers' format
    (or without its header, with a BOM, a blank line and float counts: the reader is lenient)."""
    rows = [[980.0 if t == p else 0.0 for p in range(10)] for t in range(10)]
    rows[6][9], rows[9][6] = six_as_nine, nine_as_six
    lines = [",".join(["true\\pred", *map(str, range(10))])] if header else ["\ufeff"]
    lines += [",".join([str(t), *(f"{c:g}" if header else f" {c}" for c in row)])
              for t, row in enumerate(rows)]  # fmt: skip
    return "\n".join(lines) + "\n"


def test_read_confusion_is_lenient_but_wants_ten_by_ten(tmp_path: Path) -> None:
    path = tmp_path / "confusion.csv"
    assert read_confusion(path) is None
    path.write_text(confusion_csv(7, 4, header=False))
    matrix = read_confusion(path)
    assert matrix is not None and (matrix[6, 9], matrix[9, 6], matrix[0, 0]) == (7, 4, 980)
    lines = confusion_csv(7, 4).splitlines()
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]))  # rows in any order
    assert read_confusion(path)[6, 9] == 7
    path.write_text("\n".join(lines[:-1]))  # a class missing
    assert read_confusion(path) is None


NAMED_CONFUSION = "true\\pred,cat,dog,fox\ncat,9,1,0\ndog,0,10,0\nfox,2,0,8\n"


def test_read_confusion_by_class_name(tmp_path: Path) -> None:
    """The trainers name rows and columns by class: read in any row order, any K; a header of
    the labels in another order says which column is which; a row of no class, a class named
    twice, or a missing class is None."""
    path = tmp_path / "confusion.csv"
    header, *rows = NAMED_CONFUSION.splitlines()
    path.write_text("\n".join([header, *reversed(rows)]))
    confusion = read_named_confusion(path)
    assert confusion is not None and confusion.classes == ("cat", "dog", "fox")
    assert confusion.matrix.tolist() == [[9, 1, 0], [0, 10, 0], [2, 0, 8]]
    path.write_text("true\\pred,2,0,1\n0,0,9,1\n1,0,0,10\n2,8,2,0\n")
    confusion = read_named_confusion(path)
    assert confusion.classes == ("0", "1", "2") and confusion.matrix[2, 0] == 2
    for broken in (NAMED_CONFUSION.replace("\nfox,", "\nowl,"),
                   NAMED_CONFUSION.replace(",fox\n", ",dog\n"),
                   "\n".join(NAMED_CONFUSION.splitlines()[:-1])):
        path.write_text(broken)
        assert read_named_confusion(path) is None, broken


# ---------------------------------------------------------------------------- figures, jobs


def assert_png(path: Path) -> None:
    """A complete PNG that matplotlib reads back as an image."""
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 100


def test_figures_read_back(seeded: tuple[Path, Report]) -> None:
    root, report = seeded
    for name in ("curves.png", "ablation.png"):
        assert_png(report.paths[name])
    assert "parallel.png" not in report.paths and not (root / "parallel.png").exists()
    md = (root / "report.md").read_text()
    assert "min-max over the group's runs" in md and "parallel coordinates" not in md


def test_36_runs_with_three_factors_get_a_parallel_figure(tmp_path: Path) -> None:
    """12 groups of 3 seeds: curves stay a line per group, and parallel.png appears."""
    for i, (opt, aug, backend) in enumerate(
        (o, a, b) for o in ("adam", "rmsprop") for a in ("none", "flip", "shift_rotate")
        for b in ("lightning", "keras")
    ):  # fmt: skip
        for seed in SEEDS:
            test = 0.95 + 0.004 * i + 0.001 * seed
            make_run(tmp_path / f"{i}-{seed}", optimizer=opt, aug=aug, backend=backend,
                     seed=seed, results=seed_results(test, seed, aug))  # fmt: skip
    report = write_report([tmp_path], tmp_path, show=False)
    assert report.factors == ["optimizer.name", "aug.name", "backend.name"]
    assert len(report.groups) == 12 and {g.n for g in report.groups} == {3}
    for name in ("curves.png", "ablation.png", "parallel.png"):
        assert_png(report.paths[name])
    assert "![parallel coordinates](parallel.png)" in report.paths["report.md"].read_text()


def test_epoch_band_over_the_runs_that_reached_each_epoch() -> None:
    runs = [{"epoch": [1, 2, 3], "val_acc": [0.5, 0.6, 0.7]},
            {"epoch": [1, 2], "val_acc": [0.7, 0.8]}]  # fmt: skip
    epochs, mean, low, high = epoch_band(runs, "val_acc")
    assert epochs == [1, 2, 3]
    assert list(mean) == pytest.approx([0.6, 0.7, 0.7])
    assert (list(low), list(high)) == ([0.5, 0.6, 0.7], [0.7, 0.8, 0.7])


def test_job_counts_line_only_when_given(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    counts = {"skipped": 2, "resumed": 1, "started": 3}
    report = write_report([tmp_path], tmp_path, show=False, job_counts=counts)
    assert report.job_counts == counts
    assert "jobs: 2 skipped, 1 resumed, 3 started" in report.paths["report.md"].read_text()
    report = write_report([tmp_path], tmp_path, show=False)
    assert report.job_counts is None and "jobs:" not in report.paths["report.md"].read_text()


def test_provenance_names_the_command_the_commits_and_the_machines(tmp_path: Path) -> None:
    """From the sweep's multirun.yaml and each run's summary.json; a run from before mnistlab
    recorded them is counted as not recorded, never guessed."""
    from mnistlab.run.provenance import code_commit

    machine = {"cpu": "Test CPU", "cores": 2, "gpu": None, "python": "3.11.7", "torch": "2.1"}
    for i, commit in enumerate(["abc123", "abc123", None]):
        run = make_run(tmp_path / str(i), seed=i)
        summary = json.loads((run / "summary.json").read_text())
        if commit:
            summary.update(commit=commit, machine=machine)
        (run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {"overrides": {
        "hydra": ["hydra/launcher=parallel"], "task": ["sweeps=study"]}}}))
    report = write_report([tmp_path], tmp_path, show=False)
    text = report.paths["report.md"].read_text()
    provenance = text[text.index("## Provenance"):]
    assert "- command: `python train.py -m hydra/launcher=parallel sweeps=study`" in provenance
    assert "- runs trained at commit: `abc123` (2 runs)" in provenance
    assert "- runs trained at commit: not recorded (1 runs)" in provenance
    assert ("- runs trained on: Test CPU, 2 cores, GPU none; Python 3.11.7, torch 2.1 (2 runs)"
            in provenance)
    assert f"at commit `{code_commit()}`" in provenance


def test_a_report_over_a_three_class_dataset_knows_no_digits(tmp_path: Path) -> None:
    """The report is generic: a 3-class dataset's confusions read back as 3x3 with their class
    names, and the study's plug-in adds nothing (no study experiment, no digits to confuse), not
    even for a run that calls its data mnist."""
    for i, optimizer in enumerate(("adam", "rmsprop")):
        make_run(tmp_path / str(i), optimizer=optimizer, confusion=NAMED_CONFUSION,
                 settings={"data.name": "shapes", "data.dir": "/shapes"})
    report = write_report([tmp_path], tmp_path, show=False)
    assert [r["status"] for r in report.rows] == ["completed", "completed"]
    assert report.factors == ["optimizer.name"] and report.sections == []
    run = load_run(tmp_path / "0", tmp_path)
    assert run.confusion is not None and run.confusion.classes == ("cat", "dog", "fox")
    assert run.confusion.matrix.shape == (3, 3) and run.confusion.matrix[2, 0] == 2
    assert "model.num_classes" not in run.config  # the data's, no setting
    md = (tmp_path / "report.md").read_text()
    assert "6<->9" not in md and "Study vs measured" not in md
    mislabelled = make_run(tmp_path / "mnist", confusion=NAMED_CONFUSION)  # data.name: mnist
    write_report([mislabelled], mislabelled, show=False)
    assert "6<->9" not in (mislabelled / "report.md").read_text()


def test_every_job_directory_of_a_damaged_sweep_is_listed_with_what_is_wrong(
        tmp_path: Path) -> None:
    """A summary cut short, a completed run whose metrics.csv is gone, a job that left no
    summary and an empty job directory: each is a failed row naming its damage, none is lost."""
    root = build_sweep(tmp_path)  # jobs 0-4, job 4 failed
    (root / "0" / "metrics.csv").unlink()
    summary = (root / "1" / "summary.json").read_text()
    (root / "1" / "summary.json").write_text(summary[: len(summary) // 2])
    (root / "2" / "summary.json").unlink()
    (root / "5").mkdir()
    report = write_report([root], root, show=False)
    rows = {r["run"]: r for r in report.rows}
    assert sorted(rows) == ["0", "1", "2", "3", "4", "5"]
    assert {r["run"] for r in report.failed} == {"0", "1", "2", "4", "5"}
    assert rows["0"]["error"] == "summary.json says completed, but metrics.csv is missing"
    assert rows["1"]["error"].startswith("unreadable summary.json: ")
    assert rows["2"]["error"] == "no summary.json: the job stopped before it wrote one"
    assert rows["5"]["error"] == "empty job directory: the job never started"
    md = (root / "report.md").read_text()
    assert "empty job directory" in md and "metrics.csv is missing" in md
