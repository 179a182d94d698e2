"""Interruption-proof runs and sweeps: killed, resumed, and the same results as never stopped."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import metric_rows, results, run_dirs, train_env, train_here

from mnistlab.config import REPO_ROOT
from mnistlab.run.rundir import expand_resume

# 2,900 training images in batches of 20: epochs long enough to be interrupted in
RECIPE = ("data.val_size=100", "data.batch_size=20", "data.eval_batch_size=100",
          "trainer.max_epochs=3", "trainer.progress_bar=false")


def start(*args: str) -> subprocess.Popen:
    """train.py in its own process group, so a kill takes W&B's helper process with it."""
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended early: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


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
    args = (*RECIPE, f"backend={backend}", f"paths.data={data}", "logger=none",
            f"hydra.run.dir={run}", f"paths.output={tmp_path}")
    proc = start(*args)
    wait_for(lambda: len(metric_rows(run)) == 1, proc)  # epoch 1 is checkpointed and published
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(metric_rows(run)) == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "running"

    done = subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=train_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_from_epoch"] == 1
    assert results(run) == results(uninterrupted[backend])


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


def test_a_directory_of_another_run_is_never_written_into(tiny_data: Path,
                                                          tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    done = train_here(*base, "optimizer.lr=0.01", "model.dropout=0.3", output=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {run} holds another run")
    assert "optimizer.lr: 0.0001 -> 0.01" in line and "model.dropout: 0.2 -> 0.3" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_max_epochs_may_be_raised_and_nothing_else(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    lower = train_here(f"resume={run}", "trainer.max_epochs=1", output=tmp_path)
    assert lower.returncode == 2 and "trainer.max_epochs: 2 -> 1" in lower.stderr
    longer = train_here(f"resume={run}", "trainer.max_epochs=3", output=tmp_path)
    assert longer.returncode == 0, longer.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["epochs_completed"], summary["resumed_from_epoch"]) == (3, 2)
    assert [r["epoch"] for r in metric_rows(run)] == ["1", "2", "3"]


@pytest.mark.parametrize(("backend", "checkpoint"), [("lightning", "last.ckpt"),
                                                     ("keras", "last.keras")])
def test_an_unreadable_checkpoint_is_one_line_naming_it(backend: str, checkpoint: str,
                                                        tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"backend={backend}", f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    (run / "checkpoints" / checkpoint).write_bytes(b"truncated")
    done = train_here(f"resume={run}", "trainer.max_epochs=3", output=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot resume from checkpoint")
    assert str(run / "checkpoints" / checkpoint) in lines[-1] and "Traceback" not in done.stderr


def test_resume_expands_to_the_stored_overrides(tmp_path: Path) -> None:
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- optimizer=sgd\n- trainer.max_epochs=2\n")
    assert expand_resume([f"resume={run}", "trainer.max_epochs=5"]) == [
        "optimizer=sgd", "trainer.max_epochs=5", f"hydra.run.dir={run}"]
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra:\n    - hydra.mode=MULTIRUN\n    - hydra/launcher=joblib\n"
        "    task:\n    - optimizer=adam,rmsprop\n")
    assert expand_resume([f"resume={sweep}"]) == [
        "--multirun", "hydra/launcher=joblib", "optimizer=adam,rmsprop",
        f"hydra.sweep.dir={sweep}"]
    assert expand_resume(["optimizer=sgd"]) == ["optimizer=sgd"]
