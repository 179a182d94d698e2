"""experiment=fast (the speed recipe); its yardstick, python -m mnistlab.backends.keras.example, is
tests/processes/test_keras_example.py.

Only that it composes, validates and runs end to end on tiny generated data: the recipe's
accuracy and seconds on real MNIST are measured by hand (`python train.py experiment=fast`),
not asserted here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mnistlab.config.checks import validate
from tests.conftest import run_dirs, train_here

# the recipe's batches are larger than the tiny data's 200 training / 100 validation images
TINY = ["trainer=debug", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "data.val_size=100", "data.batch_size=32",
        "data.eval_batch_size=50", "logger=none"]


def test_fast_composes_and_validates(compose_cfg) -> None:
    cfg = compose_cfg(["experiment=fast"])
    validate(cfg)
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.experiment == "fast"
    assert cfg.scheduler.name == "onecycle" and cfg.aug.name == "none"
    assert cfg.trainer.stop_at_val_acc is not None and cfg.trainer.max_epochs <= 4
    assert cfg.data.batch_size > 50  # larger than the study's
    validate(compose_cfg(["experiment=fast", "backend=keras"]))


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_fast_trains_on_tiny_data(tiny_data: Path, tmp_path: Path, backend: str) -> None:
    done = train_here("experiment=fast", f"backend={backend}", *TINY, f"paths.data={tiny_data}",
                      output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["backend"] == backend
    assert 1 <= summary["epochs_completed"] <= 2
    assert summary["test_acc"] is not None and summary["seconds_to_best"] is not None
    assert "seconds_to_target" in summary
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert config.experiment == "fast" and config.scheduler.name == "onecycle"
