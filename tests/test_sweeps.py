"""Experiments, sweeps and multirun behaviour: real tiny multiruns through train.py."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_train, train_here
from hydra.types import RunMode
from omegaconf import OmegaConf

from mnistlab.config import CONF_DIR, REPO_ROOT
from mnistlab.run.lifecycle import sweep_group
from mnistlab.run.tracking import run_name

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
SWEEPS = sorted(p.stem for p in (REPO_ROOT / "sweeps").glob("*.yaml"))
# SEED.md's table: backend, batch, epochs, lr, dropout, optimizer, aug, L2 weight
STUDY = {
    "seed_tf_run1": ("keras", 50, 3, 1e-3, 0.5, "rmsprop", "none", 0.0),
    "seed_tf_run2": ("keras", 50, 25, 1e-4, 0.5, "rmsprop", "flip", 1e-3),
    "seed_tf_run3": ("keras", 50, 25, 1e-4, 0.2, "adam", "shift_rotate", 1e-4),
    "seed_pt_run1": ("lightning", 128, 25, 1e-3, 0.1, "sgd", "none", 0.0),
    "seed_pt_run2": ("lightning", 50, 25, 1e-5, 0.2, "rmsprop", "flip", 1e-3),
    "seed_pt_run3": ("lightning", 50, 25, 1e-5, 0.2, "adam", "shift_rotate", 1e-4),
}
TINY = ["trainer=debug", "data.val_size=100", "logger=none"]


def test_every_study_run_is_an_experiment() -> None:
    assert sorted(STUDY) == [e for e in EXPERIMENTS if e.startswith("seed_")]
    assert sorted(["optimizer", "augmentation", "l2", "seed_runs", "ablation_grid",
                   "optuna", "study"]) == SWEEPS


def test_the_study_sweep_is_six_recipes_by_two_backends_by_three_seeds() -> None:
    done = subprocess.run([sys.executable, "train.py", "sweeps=study", "--cfg", "hydra"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    params = OmegaConf.create(done.stdout).hydra.sweeper.params
    assert params.experiment.split(",") == list(STUDY)
    assert params.backend.split(",") == ["lightning", "keras"]
    assert params["trainer.seed"].split(",") == ["1", "2", "3"]


@pytest.mark.parametrize("name", sorted(STUDY))
def test_experiment_has_the_study_hyperparameters(compose_cfg, name: str) -> None:
    cfg = compose_cfg([f"experiment={name}"])
    got = (cfg.backend.name, cfg.data.batch_size, cfg.trainer.max_epochs, cfg.optimizer.lr,
           cfg.model.dropout, cfg.optimizer.name, cfg.aug.name, cfg.regularization.weight)
    assert got == STUDY[name]
    assert cfg.experiment == name


def test_command_line_overrides_beat_the_experiment(compose_cfg) -> None:
    cfg = compose_cfg(["experiment=seed_pt_run3", "trainer.max_epochs=3"])
    assert cfg.trainer.max_epochs == 3 and cfg.optimizer.lr == 1e-5


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


def multirun(tmp_path: Path, data: Path, *overrides: str) -> tuple[subprocess.CompletedProcess,
                                                                   Path]:
    """A tiny sweep in tmp_path/out/multirun/<time> (or in the hydra.sweep.dir it is given); in
    this process, but for launchers that start processes of their own."""
    out = tmp_path / "out"
    own_processes = any(o.startswith("hydra/launcher=") and o != "hydra/launcher=basic"
                        for o in overrides)
    launch = run_train if own_processes else train_here
    done = launch("-m", f"paths.data={data}", *TINY, *overrides, output=out)
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.dir=")]
    [sweep_dir] = [Path(d) for d in given] or list((out / "multirun").iterdir())
    return done, sweep_dir


def jobs_and_report(sweep_dir: Path) -> tuple[list[Path], list[dict[str, str]]]:
    jobs = sorted(d for d in sweep_dir.iterdir() if (d / "summary.json").is_file())
    with (sweep_dir / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    for name in ("report.md", "curves.png", "ablation.png"):
        assert (sweep_dir / name).is_file(), name
    return jobs, rows


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_tiny_grid_mixing_backends_gives_four_jobs_and_a_four_row_report(tiny_data, tmp_path,
                                                                         launcher) -> None:
    done, sweep_dir = multirun(tmp_path, tiny_data, "optimizer=adam,rmsprop",
                               "backend=keras,lightning", f"hydra/launcher={launcher}")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs, rows = jobs_and_report(sweep_dir)
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert {(r["optimizer.name"], r["backend.name"]) for r in rows} == {
        ("adam", "keras"), ("adam", "lightning"), ("rmsprop", "keras"), ("rmsprop", "lightning")}
    again, _ = multirun(tmp_path, tiny_data, "optimizer=adam,rmsprop", "backend=keras,lightning",
                        f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}")
    assert again.returncode == 0 and "jobs: 4 skipped, 0 resumed, 0 started" in again.stdout


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


def test_the_report_is_a_wandb_run_in_the_sweeps_group(tiny_data, tmp_path) -> None:
    done, sweep_dir = multirun(tmp_path, tiny_data, "optimizer=adam,rmsprop", "logger=wandb")
    assert done.returncode == 0, done.stderr[-3000:]
    def records(folder: Path) -> list[dict]:
        [piece] = folder.glob("wandb/offline-run-*")
        out = subprocess.run([str(Path(sys.executable).with_name("wandb")), "leet", "inspect",
                              "--json", str(piece)], capture_output=True, text=True, timeout=120,
                             check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    report = records(sweep_dir)
    [run] = [r["run"] for r in report if r["type"] == "run"][:1]
    [job] = [r["run"] for r in records(sweep_dir / "0") if r["type"] == "run"][:1]
    assert run["job_type"] == "report" and run["run_group"] == job["run_group"]
    assert run["run_group"] == f"multirun-{sweep_dir.name}"
    logged = {k for r in report if r["type"] == "history" for k in r["history"]["item"]}
    assert {"report/runs._type", "report/groups._type", "report/curves._type"} <= logged
