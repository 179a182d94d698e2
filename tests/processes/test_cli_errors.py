"""`python train.py` as a user runs it: bad input is one `error:` line, exit 2, no leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnistlab.config import REPO_ROOT
from tests.conftest import FILES, make_dataset

HEAVY_MODULES = ("torch", "tensorflow", "keras", "pytorch_lightning", "sklearn", "wandb")


def train_py(*args: str, output: Path | None, full_error: bool = False, timeout: float = 120,
             import_time: bool = False) -> subprocess.CompletedProcess:
    """Run train.py; with import_time, `proc.imported` holds the top-level packages it imported
    (from `python -X importtime`, whose lines are taken out of proc.stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    if output is not None:
        env["WANDB_DIR"] = str(output.parent)
        args = (*args, f"paths.output={output}")
    python = [sys.executable, "-X", "importtime"] if import_time else [sys.executable]
    proc = subprocess.run([*python, "train.py", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)
    lines = proc.stderr.splitlines(keepends=True)
    timings = [line for line in lines if line.startswith("import time:")]
    proc.stderr = "".join(line for line in lines if not line.startswith("import time:"))
    proc.imported = {line.split("|")[-1].strip().split(".")[0] for line in timings}
    return proc


def assert_one_error_line(proc: subprocess.CompletedProcess, *names: str) -> str:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in proc.stderr + proc.stdout
    for name in names:
        assert name in line, (name, line)
    return line


def assert_no_run_dir(output: Path) -> None:
    leftovers = [p for p in output.rglob("*") if p.is_file()] if output.exists() else []
    assert not leftovers, leftovers
    for parent in (output / "runs", output / "multirun"):
        assert not parent.exists() or not any(parent.iterdir()), list(parent.iterdir())


@pytest.mark.parametrize(("overrides", "names"), [
    (["optimizer=lion"], ["lion", "optimizer", "adam, adamw, rmsprop, sgd"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1"]),
    (["optimizer.lr=abc"], ["optimizer.lr=abc"]),
    (["optimizer.name=sgd"], ["optimizer.name=sgd", "optimizer=adam"]),
    (["trainer.seed=-1"], ["trainer.seed=-1", "2**32"]),
], ids=["optimizer=lion", "optimizer.lr=-1", "optimizer.lr=abc", "name-contradicts-option",
        "trainer.seed=-1"])
def test_config_errors_are_one_line(tmp_path: Path, overrides: list[str],
                                    names: list[str]) -> None:
    output = tmp_path / "out"
    proc = train_py(*overrides, output=output, import_time=True)
    assert proc.returncode == 2
    assert_one_error_line(proc, *names)
    assert_no_run_dir(output)
    # answered before anything heavy loads: no training framework, no data
    assert not proc.imported & {"tensorflow", "keras", "pytorch_lightning", "wandb"}


def test_a_missing_data_folder_is_one_line(tmp_path: Path) -> None:
    output, nowhere = tmp_path / "out", tmp_path / "nowhere"
    proc = train_py(f"paths.data={nowhere}", "data.download=false", output=output)
    line = assert_one_error_line(proc, str(nowhere / "mnist"), FILES["train_images"],
                                 "data.download=true")
    assert proc.returncode == 2, line
    assert_no_run_dir(output)
    assert not nowhere.exists()


def test_a_corrupt_data_file_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_dataset(data / "mnist")
    bad = data / "mnist" / FILES["train_labels"]
    bad.write_bytes(b"<html>404 Not Found</html>\n")  # what a broken mirror might have served
    output = tmp_path / "out"
    proc = train_py(f"paths.data={data}", "data.download=false", "data.val_size=100",
                    "trainer=debug", "logger=none", output=output)
    line = assert_one_error_line(proc, str(bad), "corrupt")
    assert proc.returncode == 2, line
    assert_no_run_dir(output)


def test_help_is_quick_and_lists_the_groups() -> None:
    """Quick means: no heavy import (a timing budget would depend on the machine and its load)."""
    proc = train_py("--help", output=None, timeout=60, import_time=True)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not proc.imported & set(HEAVY_MODULES), proc.imported
    for group in ("aug", "backend", "data", "logger", "model", "optimizer", "regularization",
                  "scheduler", "trainer"):
        assert f"\n{group}: " in proc.stdout, group
    assert "optimizer: adam, adamw, rmsprop, sgd" in proc.stdout
    assert "scheduler: cosine, none, onecycle" in proc.stdout
    assert "_schema" not in proc.stdout  # the structured schemas are not offered as options


def test_hydra_full_error_gives_a_traceback(tmp_path: Path) -> None:
    output = tmp_path / "out"
    proc = train_py("optimizer=lion", output=output, full_error=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "lion" in proc.stderr


def test_hydra_full_error_gives_a_traceback_for_a_value_error(tmp_path: Path) -> None:
    proc = train_py("optimizer.lr=-1", output=tmp_path / "out", full_error=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "ConfigError" in proc.stderr
