"""Sweeps through `python train.py -m` with processes of their own: the sweep files' Hydra
config (`--cfg hydra`), the joblib and submitit launchers, and a submitit sweep's resume."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from mnistlab.config import REPO_ROOT
from tests.conftest import STUDY, SWEEPS, check_tiny_grid, jobs_and_report, multirun


def test_the_study_sweep_is_six_recipes_by_two_backends_by_three_seeds() -> None:
    done = subprocess.run([sys.executable, "train.py", "sweeps=study", "--cfg", "hydra"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    params = OmegaConf.create(done.stdout).hydra.sweeper.params
    assert params.experiment.split(",") == list(STUDY)
    assert params.backend.split(",") == ["lightning", "keras"]
    assert params["trainer.seed"].split(",") == ["1", "2", "3"]


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_composes_with_its_parameters(name: str) -> None:
    done = subprocess.run(
        [sys.executable, "train.py", f"sweeps={name}", "trainer.max_epochs=2", "--cfg", "hydra"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    hydra = OmegaConf.create(done.stdout)["hydra"]
    assert hydra.mode == "MULTIRUN" and hydra.sweeper.params
    for value in hydra.sweeper.params.values():  # every value is a real option or number
        assert value


@pytest.mark.parametrize("launcher", ["joblib"])  # basic: tests/run/test_sweeps.py
def test_tiny_grid_mixing_backends_gives_four_jobs_and_a_four_row_report(tiny_data, tmp_path,
                                                                         launcher) -> None:
    check_tiny_grid(tiny_data, tmp_path, launcher)


def test_submitit_local_sweep_mixing_backends(tiny_data, tmp_path) -> None:
    done, sweep_dir = multirun(tmp_path, tiny_data, "backend=lightning,keras",
                               "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs, rows = jobs_and_report(sweep_dir)
    assert len(jobs) == 2 and sorted(r["backend.name"] for r in rows) == ["keras", "lightning"]
    (jobs[1] / "summary.json").unlink()  # as if killed before it could write it
    again = subprocess.run([sys.executable, "train.py", "-m", f"resume={sweep_dir}"],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "jobs: 1 skipped, 1 resumed, 0 started" in again.stdout
