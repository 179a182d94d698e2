"""Shared fixtures: small generated IDX datasets, the real data's location, Hydra composition."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import runpy
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mnistlab.backends.keras.env import preload_triton
from mnistlab.config import REPO_ROOT
from mnistlab.run.configs import compose_config, register_configs

preload_triton()  # before any test imports TensorFlow: triton loaded after it crashes Python
register_configs()  # the schemas conf/'s YAML files start from, for tests that compose

SHARED_DATA = Path(os.environ.get("MNISTLAB_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: magic 0x0000080N, big-endian dims, raw bytes."""
    header = bytes([0, 0, 0x08, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(array)))
    return path


def make_dataset(folder: Path, train_per_class: int = 30, test_per_class: int = 5,
                 seed: int = 0) -> Path:
    """Write a learnable 10-class dataset: class k is a bright bar at row 2k+4, plus noise."""
    rng = np.random.default_rng(seed)

    def images(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(10), per_class)
        rng.shuffle(labels)
        x = rng.integers(0, 60, size=(len(labels), 28, 28), dtype=np.uint8)
        for i, k in enumerate(labels):
            x[i, 2 * k + 4 : 2 * k + 6, 4:24] = 255
        return x, labels.astype(np.uint8)

    x_train, y_train = images(train_per_class)
    x_test, y_test = images(test_per_class)
    write_idx(folder / FILES["train_images"], x_train)
    write_idx(folder / FILES["train_labels"], y_train)
    write_idx(folder / FILES["test_images"], x_test)
    write_idx(folder / FILES["test_labels"], y_test)
    return folder


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A data root with mnist/ of 300 training and 50 test images (use data.val_size=100)."""
    make_dataset(tmp_path / "data" / "mnist")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The shared real datasets. CI sets MNISTLAB_DATA_DIR and must never skip these tests."""
    if not (SHARED_DATA / "mnist" / FILES["train_images"]).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"real data not found under {SHARED_DATA}; CI must run real-data tests")
        pytest.skip(f"real data not found under {SHARED_DATA}")
    return SHARED_DATA


def pytest_configure(config: pytest.Config) -> None:
    """Give each pytest-xdist worker its own share of the cores (`pytest -n auto`).

    xdist leaves this to the tests. Without it every worker's runs take all the cores
    (`trainer.threads: null` reads this process's affinity), and a 2-thread torch process beside
    another one slows by up to 17x here: OpenMP threads spin waiting for a descheduled peer. A
    pinned worker's runs, and the processes they start, use its cores only.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...: set only in xdist workers
    if worker is None or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    count, index = int(os.environ["PYTEST_XDIST_WORKER_COUNT"]), int(worker.removeprefix("gw"))
    os.sched_setaffinity(0, cpus[index::count] or [cpus[index % len(cpus)]])


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNISTLAB_CACHE_DIR", str(tmp_path / "cache"))  # the split cache
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))


@pytest.fixture
def compose_cfg() -> Iterator:
    """compose_cfg(overrides) -> DictConfig, through Hydra's compose API."""
    def _compose(overrides: list[str] | None = None) -> DictConfig:
        return compose_config(overrides or [])

    yield _compose


def run_train(*overrides: str, output: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python train.py OVERRIDES paths.output=OUTPUT` from the repo root, as a user runs it."""
    return subprocess.run(
        [sys.executable, "train.py", *overrides, f"paths.output={output}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )


def _absl_to_stderr() -> None:
    """Point absl's log handler (TensorFlow's) at the process's stderr. A run's logging setup
    (Hydra's dictConfig) closes every handler, and absl's then closes its stream unless it is
    the current sys.stderr: under train_here's capture that would be pytest's own stream."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.get_absl_handler().python_handler.setStream(sys.__stderr__)


def train_here(*overrides: str, output: Path) -> subprocess.CompletedProcess:
    """train.py run in this process as `python train.py` runs it (runpy, `__main__`), for tests of
    what a run does and writes: it skips a fresh interpreter's ~5 s of imports (torch, Lightning,
    TensorFlow), most of a debug run. What only a process shows (signals, the imports per backend,
    DDP's processes, Slurm) stays with run_train. The exit code is SystemExit's (1 and the
    traceback for an exception, as Python gives); this process's argv, environment, logging,
    signal handlers and warning filters are put back afterwards."""
    # Lightning's import sets an environment variable for good; imported now, the restore of the
    # environment below keeps it, as a later import in this process would find it
    import mnistlab.backends.lightning.trainer  # noqa: F401

    argv = ["train.py", *overrides, f"paths.output={output}"]
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env, saved_cwd = sys.argv, dict(os.environ), os.getcwd()
    root = logging.getLogger()
    saved_logging = root.handlers[:], root.level
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM,
                                                      signal.SIGUSR2)}
    code = 0
    _absl_to_stderr()
    try:
        sys.argv = argv
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true")
        os.chdir(REPO_ROOT)
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            try:
                runpy.run_path(str(REPO_ROOT / "train.py"), run_name="__main__")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # the last job's; code run later must not read it
        for handler in root.handlers:
            if handler not in saved_logging[0]:
                handler.close()
        root.handlers[:], root.level = saved_logging
        for s, handler in saved_signals.items():
            signal.signal(s, handler)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        _absl_to_stderr()  # also if this run imported TensorFlow
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


RESULT_KEYS = ("epochs_completed", "params", "train_loss", "train_acc", "val_loss", "val_acc",
               "test_loss", "test_acc", "best_val_acc", "best_epoch")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,900 training images (with data.val_size=100): epochs long enough to interrupt."""
    root = tmp_path_factory.mktemp("data")
    make_dataset(root / "mnist", train_per_class=300, test_per_class=20)
    return root


def train_env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def metric_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv's rows so far ([] before it exists)."""
    try:
        with (run / "metrics.csv").open() as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def results(run: Path) -> tuple[list[dict[str, str]], dict]:
    """metrics.csv without its timing column, and summary.json's result keys."""
    rows = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in metric_rows(run)]
    summary = json.loads((run / "summary.json").read_text())
    return rows, {k: summary[k] for k in RESULT_KEYS}


def run_dirs(output: Path) -> list[Path]:
    """The run directories (those with a summary.json) under an output folder, oldest first."""
    return sorted(p.parent for p in output.rglob("summary.json") if "wandb" not in p.parts)
