"""mnistlab.report on hand-built run directories: exact tables, overfit flags, plots, CLI."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnistlab.report import (
    OVERFIT_GAP,
    NoRunsError,
    Report,
    overfit_reason,
    varying_keys,
    write_report,
)

SRC = Path(__file__).resolve().parents[1] / "src"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRICS_HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"]
FALLING = [0.5, 0.3, 0.2, 0.15, 0.12]

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
    ["run", "optimizer.name", "optimizer.lr", "aug.name", "status", "train_acc",
     "val_acc", "test_acc", "best_val_acc", "best_epoch", "gap", "wall_seconds", "overfit",
     "error"],
    ["1", "adam", "0.001", "flip", "completed", "0.9", "0.975", "0.977", "0.975", "5",
     "-0.075", "14.0", "no", ""],
    ["0", "adam", "0.001", "none", "completed", "0.975", "0.97", "0.968", "0.972", "3",
     "0.005", "12.5", "no", ""],
    ["2", "rmsprop", "0.001", "none", "completed", "0.96", "0.965", "0.96", "0.97", "2",
     "-0.005", "13.0", "yes", ""],
    ["3", "rmsprop", "0.001", "flip", "completed", "0.99", "0.93", "0.925", "0.935", "4",
     "0.06", "15.25", "yes", ""],
    ["4", "sgd", "0.01", "none", "failed", "", "", "", "", "", "", "3.2", "no", FAILED_ERROR],
]  # fmt: skip


def make_run(
    run_dir: Path,
    *,
    optimizer: str = "adam",
    lr: float = 0.001,
    aug: str = "none",
    results: dict[str, Any] | None = None,
    train_loss: list[float] | None = FALLING,
    val_loss: list[float] | None = FALLING,
    overrides: list[str] | None = None,
    error: str | None = None,
) -> Path:
    """Write a run dir the way the framework does: .hydra/, metrics.csv, summary.json."""
    hydra = run_dir / ".hydra"
    hydra.mkdir(parents=True)
    config = {
        "data": {"name": "mnist", "batch_size": 128, "val_fraction": 0.1},
        "model": {"name": "cnn", "dropout": 0.25},
        "optimizer": {"name": optimizer, "lr": lr},
        "aug": {"name": aug, "p": 0.5} if aug != "none" else {"name": aug},
        "regularization": {"weight": 0.0},
        "backend": {"name": "lightning"},
        "trainer": {"max_epochs": 5, "seed": 42},
        "logger": {"name": f"job-{run_dir.name}", "project": "mnistlab"},
        "paths": {"output_dir": str(run_dir)},
    }
    if overrides is None:
        overrides = [f"optimizer={optimizer}", f"aug={aug}", "trainer.max_epochs=5"]
    (hydra / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"mode": "MULTIRUN"}}))
    if train_loss is not None and val_loss is not None:
        with (run_dir / "metrics.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRICS_HEADER)
            for i, (tl, vl) in enumerate(zip(train_loss, val_loss, strict=True)):
                writer.writerow([i + 1, tl, 0.8 + 0.03 * i, vl, 0.85 + 0.02 * i, 0.001, 2.5])
    results = results or dict(train_acc=0.98, val_acc=0.975, test_acc=0.974, best_val_acc=0.976,
                              best_epoch=5, wall_seconds=10.0)  # fmt: skip
    summary = {
        "status": "failed" if error else "completed",
        "error": error,
        "backend": "lightning",
        "dataset": "mnist",
        "seed": 42,
        "epochs_completed": len(train_loss or []),
        "params": 1234,
        "train_loss": None if error else 0.12,
        "val_loss": None if error else 0.2,
        "test_loss": None if error else 0.2,
        "train_samples_per_second": None if error else 4000.0,
        "overrides": overrides,
        **results,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


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
    # aug.p exists only for flip: it follows from aug.name, so it is no column of its own
    assert report.varying == ["optimizer.name", "optimizer.lr", "aug.name"]
    assert report.factors == ["optimizer", "aug"]
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
    assert set(report.paths) == {"runs.csv", "report.md", "curves.png", "ablation.png"}
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
        "| 1 | adam | 0.001 | flip | completed | 0.9000 | 0.9750 | 0.9770 | 0.9750 | 5 "
        "| -0.0750 | 14.0 | no | - |"
    )
    assert table[4] == (
        "| 4 | sgd | 0.01 | none | failed | - | - | - | - | - | - | 3.2 | no "
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
    a = {"optimizer.name": "adam", "paths.output_dir": "/a", "logger.name": "a", "seed": 1}
    b = {"optimizer.name": "sgd", "paths.output_dir": "/b", "logger.name": "b", "seed": 1}
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


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "mnistlab.report", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_cli_single_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "2024-05-02_09-00-00")
    proc = run_cli(run)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(run / "runs.csv")
    assert rows == [
        EXPECTED_CSV[0][:1] + EXPECTED_CSV[0][4:],
        ["2024-05-02_09-00-00", "completed", "0.98", "0.975", "0.974", "0.976", "5", "0.005",
         "10.0", "no", ""],
    ]  # fmt: skip
    assert (run / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (run / "ablation.png").read_bytes().startswith(PNG_SIGNATURE)
    assert "2024-05-02_09-00-00" in proc.stdout


def test_cli_no_runs(tmp_path: Path) -> None:
    proc = run_cli(tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip() == f"error: no runs (summary.json) found under {tmp_path}"
    with pytest.raises(SystemExit, match="no runs"):
        write_report([tmp_path], tmp_path, show=False)
    with pytest.raises(NoRunsError):
        write_report([tmp_path / "missing"], tmp_path, show=False)
