"""Several devices per run: Lightning DDP over 2 CPU processes (gloo), Keras MirroredStrategy over
2 logical CPU devices, each against 1 device on the same data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import run_train, train_here

RECIPE = ("data.batch_size=50", "data.train_subset=5000", "trainer.max_epochs=1",
          "trainer.progress_bar=false", "trainer.accelerator=cpu", "logger=none",
          "optimizer.lr=0.001", "aug=none")


def train(backend: str, devices: int, data: Path, out: Path) -> tuple[list[dict], dict]:
    """One epoch on 5,000 real training images (several devices: in processes of their own)."""
    launch = train_here if devices == 1 else run_train
    done = launch(*RECIPE, f"backend={backend}", f"trainer.devices={devices}",
                  f"paths.data={data}", f"hydra.run.dir={out}", output=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_two_devices_train_like_one_on_real_data(backend: str, real_data: Path,
                                                 tmp_path: Path) -> None:
    _, one = train(backend, 1, real_data, tmp_path / "one")
    rows2, two = train(backend, 2, real_data, tmp_path / "two")
    print(f"{backend}: 1 device {one['train_samples_per_second']} samples/s, test "
          f"{one['test_acc']:.4f}; 2 devices {two['train_samples_per_second']} samples/s, test "
          f"{two['test_acc']:.4f}")
    assert two["status"] == "completed" and len(rows2) == 1  # one set of outputs, each epoch once
    assert two["epochs_completed"] == one["epochs_completed"] == 1
    assert one["test_acc"] > 0.85
    # the same batches, other dropout draws: close, not identical
    assert two["val_acc"] == pytest.approx(one["val_acc"], abs=0.02)
    assert two["test_acc"] == pytest.approx(one["test_acc"], abs=0.02)
    written = {p.name for p in (tmp_path / "two").iterdir()}
    assert {"metrics.csv", "summary.json", "checkpoints", ".hydra"} <= written
    assert not {"summary.json", "metrics.csv"} & {p.name for p in (tmp_path / "two").glob("*/*")}


@pytest.mark.parametrize(("overrides", "text"), [
    (["trainer.devices=3"], "data.batch_size=20 is not allowed with 3 devices"),
    (["backend=keras", "trainer.num_nodes=2"], "use backend=lightning"),
    (["-m", "trainer.devices=2", "trainer.seed=1,2"], "in a local multirun is not supported"),
])
def test_device_counts_that_cannot_work_are_one_line(overrides: list[str], text: str,
                                                     tiny_data: Path, tmp_path: Path) -> None:
    done = run_train(*overrides, *RECIPE, "data.batch_size=20", "data.val_size=100",
                     f"paths.data={tiny_data}", output=tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode != 0 and text in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    if "-m" not in overrides:
        assert len(errors) == 1  # a multirun adds its own summary line per failed sweep
