"""python -m mnistlab.backends.keras.example, the yardstick of experiment=fast (the Keras example's
network and recipe, outside mnistlab): it runs end to end on tiny data, and a missing data file is
one error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mnistlab.config import REPO_ROOT


def test_keras_example_smoke(tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "example.json"
    done = subprocess.run(
        [sys.executable, "-m", "mnistlab.backends.keras.example", "--epochs", "1",
         "--data-dir", str(tiny_data / "mnist"), "--json", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env={**os.environ},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fit seconds:" in done.stdout and "test accuracy:" in done.stdout
    result = json.loads(out.read_text())
    assert result["epochs"] == 1 and result["train_samples"] == 300
    assert result["fit_seconds"] > 0 and 0 <= result["test_acc"] <= 1
    assert result["params"] == 34_826  # the example's network


def test_keras_example_missing_data(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mnistlab.backends.keras.example", "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: data file not found:"), done.stderr
