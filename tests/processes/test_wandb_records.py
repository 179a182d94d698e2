"""What runs and sweeps log to W&B (offline), read back with `wandb leet inspect`, a process of its
own: a run's test-set errors and one history row per epoch; a sweep's report as a run in its
group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.image import imread

from mnistlab.report.runs import read_confusion
from tests.conftest import multirun, run_dirs, train_here


def wandb_records(run: Path) -> list[dict]:
    """The records of the run directory's offline W&B run, as `wandb leet inspect` reads them."""
    [piece] = (run / "wandb").glob("offline-run-*")
    out = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect",
                          "--json", str(piece)], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_a_run_writes_its_errors_and_one_wandb_row_per_epoch(backend: str, tiny_data: Path,
                                                            tmp_path: Path) -> None:
    done = train_here("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}",
                      f"backend={backend}", "logger=wandb", output=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path)
    matrix = read_confusion(run / "confusion.csv")
    assert matrix is not None and matrix.sum() == 50  # every test image, once
    for png in ("confusion.png", "wrong.png"):
        assert imread(run / png).ndim == 3
    records = wandb_records(run)
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    assert [h["epoch"] for h in history] == [1, 2]  # one row per epoch, stepped by epoch
    assert any(k.startswith("test/confusion") for k in history[-1])
    summary: dict = {}
    for r in records:
        if r["type"] == "summary":
            summary.update(r["summary"]["update"])
    assert summary["best/val_acc"] == max(h["val/acc"] for h in history)
    assert summary["val/acc"] == history[-1]["val/acc"]  # the final values too
    assert summary["test/acc"] == json.loads((run / "summary.json").read_text())["test_acc"]
    metrics = [r["metric"] for r in records if r["type"] == "metric"]
    assert any(m.get("glob_name") == "*" and m.get("step_metric") == "epoch" for m in metrics)


def test_the_report_is_a_wandb_run_in_the_sweeps_group(tiny_data, tmp_path) -> None:
    done, sweep_dir = multirun(tmp_path, tiny_data, "optimizer=adam,rmsprop", "logger=wandb")
    assert done.returncode == 0, done.stderr[-3000:]
    report = wandb_records(sweep_dir)
    [run] = [r["run"] for r in report if r["type"] == "run"][:1]
    [job] = [r["run"] for r in wandb_records(sweep_dir / "0") if r["type"] == "run"][:1]
    assert run["job_type"] == "report" and run["run_group"] == job["run_group"]
    assert run["run_group"] == f"multirun-{sweep_dir.name}"
    logged = {k for r in report if r["type"] == "history" for k in r["history"]["item"]}
    assert {"report/runs._type", "report/groups._type", "report/curves._type"} <= logged
