"""`python train.py` as a user runs it: bad input is one `error:` line, exit 2, no leftovers."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FILES, make_dataset

from mnistlab.config import REPO_ROOT

QUICK_SECONDS = 60  # generous: the CPUs are shared; a user error never trains or downloads


def train_py(*args: str, output: Path | None, full_error: bool = False,
             timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true")
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    if output is not None:
        env["WANDB_DIR"] = str(output.parent)
        args = (*args, f"paths.output={output}")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)
    return proc, time.perf_counter() - started


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
    (["optimizer=adamw"], ["adamw", "optimizer", "adam, rmsprop, sgd"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1"]),
    (["optimizer.lr=abc"], ["optimizer.lr=abc"]),
], ids=["optimizer=adamw", "optimizer.lr=-1", "optimizer.lr=abc"])
def test_config_errors_are_one_line(tmp_path: Path, overrides: list[str],
                                    names: list[str]) -> None:
    output = tmp_path / "out"
    proc, seconds = train_py(*overrides, output=output)
    print(f"{' '.join(overrides)}: {seconds:.2f} s")
    assert proc.returncode == 2
    assert_one_error_line(proc, *names)
    assert seconds < QUICK_SECONDS
    assert_no_run_dir(output)


def test_a_missing_data_folder_is_one_line(tmp_path: Path) -> None:
    output, nowhere = tmp_path / "out", tmp_path / "nowhere"
    proc, seconds = train_py(f"paths.data={nowhere}", "data.download=false", output=output)
    print(f"missing data: {seconds:.2f} s")
    line = assert_one_error_line(proc, str(nowhere / "mnist"), FILES["train_images"],
                                 "data.download=true")
    assert proc.returncode == 2, line
    assert seconds < QUICK_SECONDS
    assert_no_run_dir(output)
    assert not nowhere.exists()


def test_a_corrupt_data_file_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_dataset(data / "mnist")
    bad = data / "mnist" / FILES["train_labels"]
    bad.write_bytes(b"<html>404 Not Found</html>\n")  # what a broken mirror might have served
    output = tmp_path / "out"
    proc, seconds = train_py(f"paths.data={data}", "data.download=false", "data.val_size=100",
                             "trainer=debug", "logger=none", output=output)
    print(f"corrupt data: {seconds:.2f} s")
    line = assert_one_error_line(proc, str(bad), "corrupt")
    assert proc.returncode == 2, line
    assert seconds < QUICK_SECONDS
    assert_no_run_dir(output)


def test_help_is_quick_and_lists_the_groups() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc, seconds = train_py("--help", output=None, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(f"train.py --help: {seconds:.2f} s wall, {cpu:.2f} s CPU, load {load:.1f} per core")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for group in ("aug", "backend", "data", "logger", "model", "optimizer", "regularization",
                  "trainer"):
        assert f"\n{group}: " in proc.stdout, group
    assert "optimizer: adam, rmsprop, sgd" in proc.stdout
    assert "_schema" not in proc.stdout  # the structured schemas are not offered as options
    # the budget is 3 s; CPU time barely depends on what else runs, wall time does
    assert cpu < 4.5, f"--help used {cpu:.2f} s of CPU (budget 3 s)"
    wall_budget = 6 * max(1.0, load)
    assert seconds < wall_budget, f"--help took {seconds:.2f} s (budget {wall_budget:.0f} s here)"


def test_hydra_full_error_gives_a_traceback(tmp_path: Path) -> None:
    output = tmp_path / "out"
    proc, _ = train_py("optimizer=adamw", output=output, full_error=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "adamw" in proc.stderr


def test_hydra_full_error_gives_a_traceback_for_a_value_error(tmp_path: Path) -> None:
    proc, _ = train_py("optimizer.lr=-1", output=tmp_path / "out", full_error=True)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "ConfigError" in proc.stderr
