"""mnistlab.bench: one epoch of both backends on a tiny dataset writes every figure (no timing
assertions), and the bare loops train the same recipe as mnistlab (the same validation loss)."""

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
        [sys.executable, "-m", "mnistlab.bench", "--epochs", "1", "--subset", "150",
         "--data-dir", str(tiny_data), "--json", str(out), "--", "data.val_size=100"],
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


def test_bench_reports_a_failed_run_in_one_line(tiny_data: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mnistlab.bench", "--backend", "lightning",
         "--data-dir", str(tiny_data)],  # 300 images cannot give 10,000 for validation
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: train.py") and "val_size" in line, done.stderr


def test_with_repeat_the_fastest_run_of_each_side_counts(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """Runs take turns (mnistlab, bare, mnistlab, bare), and each side's fastest counts: here
    mnistlab's second run (epoch 2 in 8 s) and the bare loop's first (epoch 2 in 9 s)."""
    from mnistlab.bench import compare as bench

    mnistlab_runs = iter([[20.0, 10.0], [20.0, 8.0]])
    bare_runs = iter([[20.0, 9.0], [20.0, 12.0]])
    order = []

    def train(overrides: list[str], run_dir: Path):
        order.append(run_dir.name)
        seconds = [5.0, 2.0] if run_dir.name == "eval" else next(mnistlab_runs)
        return seconds, {"seconds_to_first_batch": 3.0 + len(order), "val_acc": 0.9,
                         "val_loss": 0.3}

    def run_python(args: list[str], what: str) -> None:
        order.append("bare")
        Path(args[2]).write_text(json.dumps({
            "epoch_seconds": next(bare_runs), "train_seconds": [1.0, 1.0], "eval_seconds": 1.0,
            "val_loss": 0.3, "val_acc": 0.9, "train_samples": 1000, "val_samples": 100,
            "batch_size": 50, "eval_batch_size": 100}))

    monkeypatch.setattr(bench, "train", train)
    monkeypatch.setattr(bench, "run_python", run_python)
    tmp_path.joinpath("b").mkdir()
    r = bench.bench_backend(["backend=lightning"], tmp_path / "b", repeat=2)
    assert order == ["run0", "bare", "run1", "bare", "eval"]
    assert r["all_samples_per_second"] == [100.0, 125.0]
    assert r["samples_per_second"] == 125.0 and r["epoch_seconds"] == [20.0, 8.0]
    assert r["bare_samples_per_second"] == pytest.approx(1000 / 9)
    assert r["ratio"] == pytest.approx(125 / (1000 / 9))
    assert r["seconds_to_first_batch"] == 4.0  # the smallest: the first run's
