"""`python -m mnistlab.report` on a hand-built run directory, and on a folder without runs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.config import REPO_ROOT
from mnistlab.report.write import NoRunsError, write_report
from tests.conftest import PNG_SIGNATURE, make_run


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "mnistlab.report", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_cli_single_run(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs" / "2024-05-02_09-00-00")
    proc = run_cli(run)
    assert proc.returncode == 0, proc.stderr
    with (run / "runs.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [  # one run: nothing varied, so no config column
        ["run", "status", "epochs", "train_acc", "val_acc", "test_acc", "best_val_acc",
         "best_epoch", "gap", "wall_seconds", "overfit", "error"],
        ["2024-05-02_09-00-00", "completed", "5", "0.98", "0.975", "0.974", "0.976", "5",
         "0.005", "10.0", "no", ""],
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
