"""Multiruns in this process (the basic launcher, Optuna's sweeper): jobs, failures, the report,
W&B groups. Launchers that start processes: tests/processes/test_sweep_launchers.py."""

from __future__ import annotations

import json

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from mnistlab.run.lifecycle import sweep_group
from mnistlab.run.tracking import run_name
from tests.conftest import check_tiny_grid, jobs_and_report, multirun


@pytest.mark.parametrize("launcher", ["basic"])  # joblib: tests/processes/
def test_tiny_grid_mixing_backends_gives_four_jobs_and_a_four_row_report(tiny_data, tmp_path,
                                                                         launcher) -> None:
    check_tiny_grid(tiny_data, tmp_path, launcher)


def test_sweep_jobs_share_a_wandb_group_and_are_named_by_their_overrides() -> None:
    hydra_cfg = OmegaConf.create({"mode": RunMode.MULTIRUN, "runtime": {"choices": {
        "sweeps": "optimizer"}}, "sweep": {"dir": "/o/multirun/2026-01-01_10-00-00_000001"}})
    assert sweep_group(hydra_cfg) == "optimizer-2026-01-01_10-00-00_000001"
    assert run_name(["sweeps=optimizer", "optimizer=adam", "paths.output=/x",
                     "trainer.max_epochs=2"]) == "optimizer=adam trainer.max_epochs=2"


def test_a_failing_job_does_not_stop_the_sweep(tiny_data, tmp_path) -> None:
    done, sweep_dir = multirun(tmp_path, tiny_data, "optimizer.lr=-1,0.001")
    assert done.returncode != 0
    assert "1 of 2 jobs failed" in done.stderr
    jobs, rows = jobs_and_report(sweep_dir)
    summaries = [json.loads((j / "summary.json").read_text()) for j in jobs]
    assert [s["status"] for s in summaries] == ["failed", "completed"]
    assert "optimizer.lr=-1.0 is not allowed" in summaries[0]["error"]
    assert "optimizer.lr=-1.0 is not allowed" in (sweep_dir / "report.md").read_text()


def test_optuna_sweep_runs_three_trials(tiny_data, tmp_path) -> None:
    done, sweep_dir = multirun(tmp_path, tiny_data, "sweeps=optuna", "hydra.sweeper.n_trials=3")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs, rows = jobs_and_report(sweep_dir)
    assert len(jobs) == 3 and len(rows) == 3
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert 0 <= best.best_value <= 1
