"""lifecycle.run_job: the failure policy that training and the EDA share."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hydra.types import RunMode
from omegaconf import OmegaConf

from mnistlab.errors import ConfigError
from mnistlab.run import lifecycle
from mnistlab.run.lifecycle import Tracking, run_job
from mnistlab.training.interrupts import RunInterrupted


class FakeRun:
    def __init__(self) -> None:
        self.exit_codes: list[int] = []

    def finish(self, exit_code: int = 0) -> None:
        self.exit_codes.append(exit_code)


@pytest.fixture
def job_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compose_cfg):
    """A Hydra job in tmp_path/run (single run or multirun) of the config `train.py logger=LOGGER`
    composes, whose W&B run is a FakeRun."""
    run = FakeRun()
    started: list[dict] = []

    def start_wandb(cfg, run_dir, **kwargs):
        started.append(kwargs)
        return run

    def configure(multirun: bool, logger: str = "wandb"):
        cfg = compose_cfg([f"logger={logger}"])  # before HydraConfig.get is replaced
        run_dir = tmp_path / "run"
        run_dir.mkdir(exist_ok=True)
        hydra_cfg = OmegaConf.create({
            "mode": RunMode.MULTIRUN if multirun else RunMode.RUN,
            "runtime": {"output_dir": str(run_dir), "choices": {"sweeps": "optimizer"}},
            "overrides": {"task": ["optimizer=sgd"]}, "job": {"num": 3},
            "sweep": {"dir": str(tmp_path / "2026-01-01_10-00-00_000001")},
        })
        monkeypatch.setattr(lifecycle.HydraConfig, "get", staticmethod(lambda: hydra_cfg))
        monkeypatch.setattr(lifecycle, "start_wandb", start_wandb)
        return cfg, run_dir

    return configure, run, started


def call(cfg, *, prepare=lambda job: "data", execute=lambda job, data: 42, finished=None):
    return run_job(cfg, prepare=prepare, execute=execute,
                   finish=lambda job: finished.append(job.status) if finished is not None else 0,
                   tracking=Tracking(job_type="test", tags=["t"]))


def boom(job, data):
    raise RuntimeError("crash")


def test_a_completed_job(job_env) -> None:
    configure, run, started = job_env
    cfg, _ = configure(multirun=True)
    finished: list[str] = []
    job = call(cfg, finished=finished)
    assert (job.status, job.result, job.error) == ("completed", 42, None)
    assert finished == ["completed"] and run.exit_codes == [0]
    assert started[0]["group"] == "optimizer-2026-01-01_10-00-00_000001"
    assert started[0]["name"] == "optimizer=sgd" and started[0]["job_type"] == "test"


def test_a_multirun_job_records_a_crash_and_the_sweep_goes_on(job_env, capsys) -> None:
    configure, run, _ = job_env
    cfg, _ = configure(multirun=True)
    finished: list[str] = []
    job = call(cfg, execute=boom, finished=finished)
    assert (job.status, job.error) == ("failed", "RuntimeError: crash")
    assert finished == ["failed"] and run.exit_codes == [1]
    assert "RuntimeError: crash" in capsys.readouterr().err


def test_a_multirun_user_error_is_one_line_naming_the_job(job_env, capsys) -> None:
    configure, run, _ = job_env
    cfg, _ = configure(multirun=True)

    def diverge(job, data):
        raise ConfigError("bad value")

    job = call(cfg, execute=diverge)
    assert job.status == "failed" and run.exit_codes == [1]
    assert capsys.readouterr().err == "error: job 3: bad value\n"


def test_a_single_run_user_error_exits_2_and_still_finishes(job_env, capsys) -> None:
    configure, run, _ = job_env
    cfg, run_dir = configure(multirun=False)
    finished: list[str] = []

    def diverge(job, data):
        raise ConfigError("diverged")

    with pytest.raises(SystemExit) as info:
        call(cfg, execute=diverge, finished=finished)
    assert info.value.code == 2 and capsys.readouterr().err == "error: diverged\n"
    assert finished == ["failed"] and run.exit_codes == [1] and run_dir.exists()


def test_bad_input_in_a_single_run_leaves_no_run_dir_and_no_wandb_run(job_env) -> None:
    configure, run, started = job_env
    cfg, run_dir = configure(multirun=False)

    def bad(job):
        raise ConfigError("optimizer.lr=-1 is not allowed")

    with pytest.raises(SystemExit):
        call(cfg, prepare=bad, finished=[])
    assert not run_dir.exists() and not started and run.exit_codes == []


def test_a_crash_in_a_single_run_raises_with_its_traceback(job_env) -> None:
    configure, run, _ = job_env
    cfg, _ = configure(multirun=False)
    with pytest.raises(RuntimeError, match="crash"):
        call(cfg, execute=boom)
    assert run.exit_codes == [1]


@pytest.mark.parametrize(("error", "code"), [(KeyboardInterrupt(), 130),
                                             (RunInterrupted(signal.SIGTERM), 143)])
def test_an_interrupt_stops_a_sweep_as_interrupted(job_env, error, code: int) -> None:
    configure, run, _ = job_env
    cfg, _ = configure(multirun=True)
    finished: list[str] = []

    def interrupted(job, data):
        raise error

    with pytest.raises(SystemExit) as info:
        call(cfg, execute=interrupted, finished=finished)
    assert info.value.code == code  # 128 + the signal, as a shell reports it
    assert finished == ["interrupted"] and run.exit_codes == [1]


@pytest.mark.parametrize("logger", ["none", "csv"])
def test_no_wandb_run_without_the_wandb_logger(job_env, logger: str) -> None:
    configure, run, started = job_env
    cfg, _ = configure(multirun=True, logger=logger)
    assert call(cfg).status == "completed"
    assert not started and run.exit_codes == []
