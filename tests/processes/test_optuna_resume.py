"""An interrupted Optuna sweep, re-run with the same sweep dir, continues its study (SQLite in the
sweep dir) to n_trials complete trials without retraining the finished ones."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from mnistlab.config import REPO_ROOT

TINY = ["trainer=debug", "data.val_size=100", "logger=none"]


def completed_jobs(sweep: Path) -> list[Path]:
    return [d for d in sweep.glob("[0-9]*")
            if (d / "summary.json").is_file()
            and json.loads((d / "summary.json").read_text())["status"] == "completed"]


def snapshot(job: Path) -> dict[str, tuple[bytes, int]]:
    """What retraining would change: the outputs' bytes and modification times."""
    return {name: ((job / name).read_bytes(), (job / name).stat().st_mtime_ns)
            for name in ("summary.json", "metrics.csv")}


def test_optuna_sweep_stopped_after_2_of_4_trials_continues_to_4(tiny_data, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "train.py", "-m", "sweeps=optuna", "hydra.sweeper.n_trials=4",
           f"hydra.sweep.dir={sweep}", f"paths.data={tiny_data}",
           f"paths.output={tmp_path / 'out'}", *TINY]
    env = {**os.environ, "WANDB_MODE": "offline"}
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=log,
                                 start_new_session=True)
        try:  # stop it while the third trial trains: two done, one interrupted
            deadline = time.monotonic() + 180
            while not (len(completed_jobs(sweep)) == 2 and (sweep / "2" / ".hydra").is_dir()):
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the first 2 trials took over 180 s"
                time.sleep(0.1)
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have ended by itself
                os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    before = {job.name: snapshot(job) for job in completed_jobs(sweep)}
    assert sorted(before) == ["0", "1"]

    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    # the sweeper finished (a report may still count the interrupted job 2 as failed)
    assert (sweep / "optimization_results.yaml").is_file(), done.stderr[-3000:]
    study = optuna.load_study(study_name="mnistlab", storage=f"sqlite:///{sweep}/optuna.db")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert [t.number for t in complete] == [0, 1, 3, 4]
    assert study.trials[2].state == TrialState.FAIL  # interrupted, not counted
    assert {job.name: snapshot(job) for job in completed_jobs(sweep) if job.name in before} \
        == before  # not retrained
    assert sorted(job.name for job in completed_jobs(sweep)) == ["0", "1", "3", "4"]
    for trial in complete:  # a trial's job dir is its number and ran its params
        job = sweep / str(trial.number)
        assert OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.job.num == trial.number
        overrides = set(OmegaConf.load(job / ".hydra" / "overrides.yaml"))
        assert {f"{name}={value}" for name, value in trial.params.items()} <= overrides
    # the resumed sampler does not replay the first run's draws
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 4
