"""trainer.threads: the cores shared between the jobs a launcher runs at once."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from mnistlab.training import threads


@pytest.mark.parametrize(("setting", "n_jobs", "expected"), [
    (3, None, 3),  # as set
    (None, None, 8),  # a single run: every core
    (None, 2, 4),  # hydra/launcher=parallel with 2 jobs at once
    (None, -1, 1),  # joblib's "as many jobs as cores"
    (None, 16, 1),  # never below one
])
def test_threads_per_run(monkeypatch: pytest.MonkeyPatch, compose_cfg, setting, n_jobs,
                         expected) -> None:
    trainer = compose_cfg([f"trainer.threads={'null' if setting is None else setting}"]).trainer
    monkeypatch.setattr(threads, "cores", lambda: 8)
    hydra = OmegaConf.create({"launcher": {} if n_jobs is None else {"n_jobs": n_jobs}})
    monkeypatch.setattr(threads.HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(threads.HydraConfig, "get", staticmethod(lambda: hydra))
    assert threads.run_threads(trainer) == expected


def test_the_parallel_launcher_runs_two_jobs(compose_cfg) -> None:
    from hydra import compose, initialize_config_dir

    from mnistlab.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=parallel"], return_hydra_config=True)
    assert cfg.hydra.launcher.n_jobs == 2 and "joblib" in cfg.hydra.launcher._target_.lower()
