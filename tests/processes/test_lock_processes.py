"""Two real train.py processes in one run directory: the second start is refused while the first
trains (the first is undisturbed), and the lock of a SIGKILLed run is taken over by the same
command, which resumes. The lock itself: tests/run/test_lock.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from mnistlab.config import REPO_ROOT
from tests.conftest import metric_rows, train_env
from tests.processes.conftest import start, wait_for

# 2,900 training images in batches of 20: 1-2 s an epoch. One thread: beside the other
# starts, a 2-thread run on 2 cores slows several times over (conftest.pytest_configure)
RECIPE = ("data.val_size=100", "data.batch_size=20", "data.eval_batch_size=100",
          "trainer.progress_bar=false", "trainer.threads=1", "logger=none")
HOST = socket.gethostname()


def stamps(run: Path) -> dict[str, int]:
    """Every file of the run directory but the ones training rewrites, with its mtime."""
    busy = ("metrics.csv", "summary.json", "checkpoints", ".lock", "train.log")
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*")
            if p.is_file() and not str(p.relative_to(run)).startswith(busy)}


def test_a_second_start_and_a_resume_are_refused_while_the_first_trains(
        data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = (*RECIPE, "trainer.max_epochs=6", f"paths.data={data}", f"hydra.run.dir={run}",
            f"paths.output={tmp_path}")
    first = start(*args)
    wait_for(lambda: (run / ".lock").is_file() and (run / ".hydra" / "overrides.yaml").is_file(),
             first)
    assert json.loads((run / ".lock").read_text())["pid"] == first.pid
    before = stamps(run)

    second, resumed = start(*args), start(f"resume={run}")
    for proc in (second, resumed):
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2, stderr[-3000:]
        [line] = stderr.strip().splitlines()
        assert line.startswith(f"error: {run} is in use by pid {first.pid} on host {HOST} "
                               "(since 20"), line
        assert line.endswith("s ago); wait for it, or stop it first"), line
    assert first.poll() is None, "the first run ended before the refusals: make it longer"
    assert stamps(run) == before  # the refused starts wrote nothing

    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["epochs_completed"]) == ("completed", 6)
    assert summary["resumed_from_epoch"] is None
    assert [int(r["epoch"]) for r in metric_rows(run)] == list(range(1, 7))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert not list(run.glob(".lock*"))  # released at the end


def test_the_lock_of_a_killed_run_is_taken_over_by_the_same_command(data: Path,
                                                                    tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = (*RECIPE, "trainer.max_epochs=3", f"paths.data={data}", f"hydra.run.dir={run}",
            f"paths.output={tmp_path}")
    proc = start(*args)
    wait_for(lambda: len(metric_rows(run)) == 1, proc)  # epoch 1 is checkpointed
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((run / ".lock").read_text())["pid"] == proc.pid  # left behind

    done = subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=train_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    takeover = [line for line in done.stderr.splitlines() if "stale lock" in line]
    assert len(takeover) == 1
    assert takeover[0].startswith(f"warning: {run}: taking over the stale lock of pid "
                                  f"{proc.pid} on host {HOST} (since 20")
    assert takeover[0].endswith("): that process is gone")
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["resumed_from_epoch"]) == ("completed", 1)
    assert not list(run.glob(".lock*"))
