"""experiment=best (the most accurate recipe within 15 minutes a run on 2 CPU cores): that it
composes, validates and trains end to end on tiny generated data on both backends. Its accuracy
on real MNIST and Fashion-MNIST is measured by hand (`python train.py experiment=best
trainer.seed=1`) and written in the README, not asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnistlab.config.checks import validate
from tests.conftest import run_dirs, train_here
from tests.run.test_fast_recipe import TINY  # the tiny data's batches, as for the fast recipe


def test_best_composes_and_validates(compose_cfg) -> None:
    cfg = compose_cfg(["experiment=best"])
    validate(cfg)
    assert cfg.experiment == "best" and cfg.model.name == "resnet"
    assert cfg.scheduler.name == "onecycle" and cfg.aug.name == "shift_rotate"
    validate(compose_cfg(["experiment=best", "backend=keras", "data=fashion_mnist"]))


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_best_trains_on_tiny_data(tiny_data: Path, tmp_path: Path, backend: str) -> None:
    done = train_here("experiment=best", f"backend={backend}", *TINY, f"paths.data={tiny_data}",
                      output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["backend"] == backend
    assert summary["params"] == 174_970  # the ResNet on 28x28x1, 10 classes, on either side
