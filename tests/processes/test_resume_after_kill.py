"""Interruption-proof runs and sweeps: killed (SIGKILL, SIGTERM) in a process of their own, resumed,
and the same results as never stopped. Resume checks in this process: tests/run/test_resume.py."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.config import REPO_ROOT
from tests.conftest import metric_rows, results, run_dirs, train_env, train_here
from tests.processes.conftest import start, wait_for

# 2,900 training images in batches of 20: epochs long enough to be interrupted in
RECIPE = ("data.val_size=100", "data.batch_size=20", "data.eval_batch_size=100",
          "trainer.max_epochs=3", "trainer.progress_bar=false")


def wandb_history(run: Path) -> tuple[set[str], list[int]]:
    """The W&B run ids of every piece of the run, and the epochs their history holds."""
    ids, epochs = set(), []
    wandb_cli = Path(sys.executable).with_name("wandb")
    for piece in sorted((run / "wandb").glob("offline-run-*")):
        ids.add(piece.name.rsplit("-", 1)[-1])
        out = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(piece)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        epochs += [r["history"]["item"]["epoch"] for r in records if r["type"] == "history"]
    return ids, epochs


@pytest.fixture(scope="module")
def uninterrupted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference: each backend's run, never stopped."""
    out = tmp_path_factory.mktemp("reference")
    runs = {}
    for backend in ("lightning", "keras"):
        done = train_here(*RECIPE, f"backend={backend}", f"paths.data={data}", "logger=none",
                          f"hydra.run.dir={out / backend}", output=out)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[backend] = out / backend
    return runs


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_sigkill_in_epoch_2_then_the_same_command_again(backend: str, data: Path, tmp_path: Path,
                                                        uninterrupted: dict[str, Path]) -> None:
    run = tmp_path / "run"
    args = (*RECIPE, f"backend={backend}", f"paths.data={data}", "logger=wandb",
            f"hydra.run.dir={run}", f"paths.output={tmp_path}")
    proc = start(*args)
    wait_for(lambda: len(metric_rows(run)) == 1, proc)  # epoch 1 is checkpointed and published
    os.killpg(proc.pid, signal.SIGKILL)  # W&B's writer too, before it flushed epoch 1 (or after)
    proc.wait()
    assert len(metric_rows(run)) == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "running"

    done = subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=train_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] == 1
    assert results(run) == results(uninterrupted[backend])
    # whatever the kill left of the first W&B piece, the run's pieces hold each epoch once
    ids, epochs = wandb_history(run)
    assert len(ids) == 1 and sorted(epochs) == [1, 2, 3], epochs


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_sigterm_is_interrupted_then_resume_by_its_directory(
        backend: str, data: Path, tmp_path: Path, uninterrupted: dict[str, Path]) -> None:
    run = tmp_path / "run"
    proc = start(*RECIPE, f"backend={backend}", f"paths.data={data}", "logger=wandb",
                 f"hydra.run.dir={run}", f"paths.output={tmp_path}")
    wait_for(lambda: len(metric_rows(run)) == 1, proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert f"resume with: python train.py resume={run}" in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs_completed"]) == ("interrupted", 1)
    assert "SIGTERM" in summary["error"]

    done = subprocess.run([sys.executable, "train.py", f"resume={run}"], cwd=REPO_ROOT,
                          env=train_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert results(run) == results(uninterrupted[backend])
    ids, epochs = wandb_history(run)
    assert len(ids) == 1 and sorted(epochs) == [1, 2, 3]  # one W&B run, each epoch once

    again = subprocess.run([sys.executable, "train.py", f"resume={run}"], cwd=REPO_ROOT,
                           env=train_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "not retrained" in again.stdout  # completed: skipped


def test_a_three_job_sweep_killed_in_its_second_job_is_finished_by_resume(data: Path,
                                                                          tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ("-m", "trainer.seed=1,2,3", *RECIPE, "trainer.max_epochs=2", f"paths.data={data}",
            "logger=none", f"hydra.sweep.dir={sweep}", f"paths.output={tmp_path}")
    proc = start(*args)
    wait_for(lambda: len(metric_rows(sweep / "1")) == 1, proc)  # job 1 is in its second epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = {name: (sweep / "0" / name).read_bytes() for name in ("summary.json", "metrics.csv")}
    mtimes = {name: (sweep / "0" / name).stat().st_mtime_ns for name in first}
    assert json.loads(first["summary.json"])["status"] == "completed"
    assert not (sweep / "2").exists()

    done = subprocess.run([sys.executable, "train.py", "-m", f"resume={sweep}"], cwd=REPO_ROOT,
                          env=train_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "jobs: 1 skipped, 1 resumed, 1 started" in done.stdout
    for name, content in first.items():  # job 0 was not retrained
        assert (sweep / "0" / name).read_bytes() == content
        assert (sweep / "0" / name).stat().st_mtime_ns == mtimes[name]
    statuses = [json.loads((run / "summary.json").read_text())["status"]
                for run in run_dirs(sweep)]
    assert statuses == ["completed"] * 3
    with (sweep / "runs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3  # one report over all three jobs
    assert "1 skipped, 1 resumed, 1 started" in (sweep / "report.md").read_text()
