"""Debug runs of `python train.py` in a process of their own, as a user starts one: what a Lightning
run writes (metrics, summary, checkpoints, offline W&B), and that a Keras run writes the same."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch

from mnistlab.training.recorder import METRIC_COLUMNS
from tests.conftest import debug_run, run_dirs, run_train

SUMMARY_KEYS = {
    "status", "error", "backend", "dataset", "seed", "epochs_completed", "params", "train_loss",
    "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "best_val_acc", "best_epoch",
    "wall_seconds", "train_samples_per_second", "overrides", "resumed_from_epoch",
    "pruned_at_epoch", "seconds_to_first_batch", "seconds_to_best", "seconds_to_target",
    "commit", "machine", "data_sha256",
}


# what Lightning and torch printed on every run and mnistlab filters at its source
NOISE = ("💡 Tip", "litlogger", "srun` command is available", "LeafSpec", "not writable",
         "Total FLOPs: 0", "`weights_only` was not set")


def test_debug_run_writes_metrics_summary_checkpoints_and_offline_wandb(tiny_data, tmp_path):
    done = run_train("trainer=debug", f"paths.data={tiny_data}", "data.val_size=100",
                     output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path / "out")
    # the terminal: the frameworks' noise filtered, a summary table at the end
    printed = done.stdout + done.stderr
    assert not [n for n in NOISE if n in printed], printed[-3000:]
    table = done.stdout[done.stdout.rindex("mnistlab run"):]
    for line in ("status        │ completed", "epochs        │ 2 of 2", "test accuracy",
                 f"wandb sync {run}/wandb/offline-run-*"):
        assert line in table, table
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRIC_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["status"] == "completed" and summary["error"] is None
    assert summary["params"] == 225_034 and summary["epochs_completed"] == 2
    assert 0 <= summary["test_acc"] <= 1 and summary["train_samples_per_second"] > 0
    assert summary["overrides"][0] == "trainer=debug"
    # what produced it: this checkout's commit, and the machine
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert summary["commit"].removesuffix("+dirty") == head
    machine = summary["machine"]
    assert machine["cores"] >= 1 and torch.__version__.startswith(machine["torch"])
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    [wandb_file] = (run / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_file.read_bytes()  # protobuf records: the config, history and summary
    for expected in (b"shift_rotate", b"val/acc", b"train/loss", b"test/acc", b"backend:lightning"):
        assert expected in records, expected


def test_debug_run_writes_what_a_lightning_debug_run_writes(tiny_data, tmp_path) -> None:
    keras_run = debug_run(tiny_data, tmp_path / "keras", "backend=keras", launch=run_train)
    lightning_run = debug_run(tiny_data, tmp_path / "lightning", launch=run_train)
    headers = []
    for run in (keras_run, lightning_run):
        with (run / "metrics.csv").open() as f:
            rows = list(csv.reader(f))
        headers.append(rows[0])
        assert [int(r[0]) for r in rows[1:]] == [1, 2]
    assert headers[0] == headers[1] == list(METRIC_COLUMNS)

    summary = json.loads((keras_run / "summary.json").read_text())
    lightning = json.loads((lightning_run / "summary.json").read_text())
    assert set(summary) == set(lightning)
    assert summary["status"] == "completed" and summary["error"] is None
    assert summary["backend"] == "keras" and summary["epochs_completed"] == 2
    assert summary["params"] == lightning["params"] == 225_034
    assert 0 <= summary["test_acc"] <= 1 and summary["train_samples_per_second"] > 0
    with (keras_run / "metrics.csv").open() as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert lrs == [pytest.approx(1e-4)] * 2  # the optimizer's learning rate, as in Lightning

    assert {p.name for p in (keras_run / "checkpoints").iterdir()} == {"best.keras", "last.keras",
                                                                  "last.json"}
    [wandb_file] = (keras_run / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_file.read_bytes()  # protobuf records: the config, history and summary
    for expected in (b"shift_rotate", b"val/acc", b"train/loss", b"test/acc", b"backend:keras"):
        assert expected in records, expected
