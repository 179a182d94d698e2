"""mnistlab.bench: one epoch of both backends on a tiny dataset writes every figure (no timing
assertions), and the bare loops train the same recipe as mnistlab (the same training and
validation losses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.config import REPO_ROOT

FIGURES = ("samples_per_second", "bare_samples_per_second", "ratio", "eval_samples_per_second",
           "bare_eval_samples_per_second", "seconds_to_first_batch")


def test_bench_writes_every_figure_for_both_backends(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "mnistlab.bench", "--epochs", "1", "--repeat", "1",
         "--subset", "150", "--data-dir", str(tiny_data), "--json", str(out), "--",
         "data.val_size=100"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "samples/s" in done.stdout
    results = json.loads(out.read_text())
    assert set(results) == {"lightning", "keras"}
    for backend, r in results.items():
        for key in FIGURES:
            assert isinstance(r[key], float) and r[key] > 0, (backend, key, r[key])
        assert r["train_samples"] == 150 and r["val_samples"] == 100
        assert len(r["epoch_seconds"]) == len(r["bare_epoch_seconds"]) == 1
        assert r["machine"]["cores"] >= 1 and r["machine"]["date"]
        # same split, init, batches and random streams: the yardstick is the same recipe
        assert r["bare_val_loss"] == pytest.approx(r["val_loss"], rel=1e-3), backend
        assert r["bare_train_loss"] == pytest.approx(r["train_loss"], rel=1e-3), backend
        assert r["bare_train_acc"] == pytest.approx(r["train_acc"], abs=1e-6), backend


def test_bench_reports_a_failed_run_in_one_line(tiny_data: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mnistlab.bench", "--backend", "lightning",
         "--data-dir", str(tiny_data)],  # 300 images cannot give 10,000 for validation
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: train.py") and "val_size" in line, done.stderr
