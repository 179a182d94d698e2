"""Learning-rate schedules: the same lr at every optimizer step on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab.backends.keras.env import import_keras
from tests.conftest import group_config, run_dirs, train_here

keras = import_keras("tensorflow")

from mnistlab.backends.keras import schedule as keras_schedule  # noqa: E402
from mnistlab.backends.lightning import schedule as torch_schedule  # noqa: E402

SCHEDULES = {
    "none": dict(name="none"),
    "cosine": dict(name="cosine", min_lr=1e-5, warmup_epochs=0),
    "cosine_warmup": dict(name="cosine", min_lr=0.0, warmup_epochs=2),
    "onecycle": dict(name="onecycle", max_lr=3e-3, pct_start=0.25, div_factor=10.0,
                     final_div_factor=100.0),
}
LR, STEPS_PER_EPOCH, EPOCHS = 1e-3, 7, 5


def torch_lrs(sched: dict, total: int) -> list[float]:
    """The lr each of `total` steps trains with, stepping the scheduler as Lightning does."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = torch_schedule.SCHEDULES[sched["name"]](optimizer, group_config("scheduler", sched),
                                                        STEPS_PER_EPOCH, total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return lrs


def keras_lrs(sched: dict, total: int) -> list[float]:
    lr = keras_schedule.SCHEDULES[sched["name"]](group_config("scheduler", sched), LR,
                                                 STEPS_PER_EPOCH, total)
    if isinstance(lr, float):
        return [lr] * total
    return [float(keras.ops.convert_to_numpy(lr(step))) for step in range(total)]


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_same_lr_at_every_step(name: str) -> None:
    total = STEPS_PER_EPOCH * EPOCHS
    expected, got = torch_lrs(SCHEDULES[name], total), keras_lrs(SCHEDULES[name], total)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * LR)  # float32 beside float64


def test_schedule_shapes() -> None:
    total = STEPS_PER_EPOCH * EPOCHS
    cosine = torch_lrs(SCHEDULES["cosine"], total)
    assert cosine[0] == pytest.approx(LR) and cosine[-1] == pytest.approx(1e-5, rel=0.2)
    assert all(a >= b for a, b in zip(cosine, cosine[1:], strict=False))
    warm = torch_lrs(SCHEDULES["cosine_warmup"], total)
    assert warm[0] == 0 and warm[2 * STEPS_PER_EPOCH] == pytest.approx(LR)
    one = torch_lrs(SCHEDULES["onecycle"], total)
    assert one[0] == pytest.approx(3e-4) and max(one) == pytest.approx(3e-3, rel=1e-3)
    assert one[-1] == pytest.approx(3e-6)


def step_lrs(run: Path) -> list[float]:
    """Every step's lr as W&B received it: the per-epoch `lr/steps` tables, in step order."""
    rows = []
    for table in run.glob("wandb/offline-run-*/files/media/table/lr/steps_table_*.json"):
        rows += json.loads(table.read_text())["data"]
    return [lr for _, lr in sorted(rows)]


@pytest.mark.parametrize("recipe", [
    ["optimizer=adamw", "scheduler=onecycle", "scheduler.max_lr=0.003"],
    ["scheduler=cosine", "scheduler.warmup_epochs=1", "optimizer.lr=0.002"],
], ids=["adamw+onecycle", "cosine+warmup"])
def test_debug_runs_train_with_the_same_lrs_on_both_backends(tiny_data: Path, tmp_path: Path,
                                                             recipe: list[str]) -> None:
    runs = {}
    for backend in ("lightning", "keras"):
        done = train_here(*recipe, f"backend={backend}", "trainer=debug", "data.val_size=100",
                          "data.batch_size=20", f"paths.data={tiny_data}", "logger=wandb",
                          output=tmp_path / backend)
        assert done.returncode == 0, done.stderr[-3000:]
        [runs[backend]] = run_dirs(tmp_path / backend)
        summary = json.loads((runs[backend] / "summary.json").read_text())
        assert summary["status"] == "completed"
    lightning, keras_run = step_lrs(runs["lightning"]), step_lrs(runs["keras"])
    assert len(lightning) == len(keras_run) == 20  # 2 epochs of 200 / 20 samples
    for step in (0, 9, 19):  # the first, a middle and the last step
        assert keras_run[step] == pytest.approx(lightning[step], abs=1e-7)
    for backend, run in runs.items():  # metrics.csv: the lr of each epoch's last step
        lrs = np.loadtxt(run / "metrics.csv", delimiter=",", skiprows=1, usecols=5)
        np.testing.assert_allclose(lrs, [step_lrs(run)[9], step_lrs(run)[19]], atol=1e-9,
                                   err_msg=backend)
