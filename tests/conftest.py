"""Shared fixtures and helpers: small generated IDX datasets, the real data's location, Hydra
composition, runs of train.py (in this process or in one of its own), tiny sweeps, and run
directories written as a run writes them (for the report)."""

from __future__ import annotations

import copy
import csv
import functools
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
from typing import Any

import numpy as np
import pytest
import yaml
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

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


COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


def make_image_folder(root: Path, train_per_class: int = 20, test_per_class: int | None = 5,
                      size: tuple[int, int] = (32, 32), seed: int = 0) -> Path:
    """<root>/train/<class>/*.png (and test/ unless test_per_class is None): 3 classes of RGB
    images, each a noisy field with a bright square of its class's colour at a random place."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    height, width = size
    parts = {"train": train_per_class, "test": test_per_class}
    for part, per_class in parts.items():
        if per_class is None:
            continue
        for name, colour in COLOURS.items():
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                x = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
                top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
                x[top:top + height // 3, left:left + width // 3] = colour
                Image.fromarray(x).save(folder / f"{i:03d}.png")
    return root


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `real` marker for every test whose name says real: CI (.ci/run) fails when one of
    them is skipped, and `pytest -m real` runs them alone."""
    for item in items:
        if "real" in item.name:
            item.add_marker(pytest.mark.real)


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


def group_config(group: str, values: dict[str, Any]) -> DictConfig:
    """One config group as `train.py GROUP=NAME GROUP.KEY=VALUE ...` composes it: values["name"]
    selects the option, the other values are set on it (a key the option lacks fails)."""
    sets = [f"{group}.{key}={value}" for key, value in values.items() if key != "name"]
    return compose_config([f"{group}={values['name']}", *sets])[group]


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
    return script_here("train.py", *overrides, output=output)


def script_here(script: str, *overrides: str, output: Path) -> subprocess.CompletedProcess:
    """An entry script of the repo root (train.py, eval.py, predict.py, export.py) run in this
    process as train_here runs train.py."""
    # Lightning's import sets an environment variable for good; imported now, the restore of the
    # environment below keeps it, as a later import in this process would find it
    import mnistlab.backends.lightning.trainer  # noqa: F401

    argv = [script, *overrides, f"paths.output={output}"]
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
                runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
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


def debug_run(data: Path, output: Path, *extra: str, launch=train_here) -> Path:
    """A trainer=debug run on the tiny dataset (data.val_size=100); its run directory."""
    done = launch("trainer=debug", f"paths.data={data}", "data.val_size=100", *extra,
                  output=output)
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(output)
    return run


# ---------------------------------------------------------------- the EDA's planted dataset

TRAIN_PER_CLASS = [20 + 2 * k for k in range(10)]  # unequal, so a swapped class shows
TEST_PER_CLASS = [3 + k for k in range(10)]
VAL_SIZE = 60
BRIGHT_CLASS, DARK_CLASS = 3, 6  # planted: an all-255 image among dim 3s, an all-0 one among 6s


def dim_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dim noise (0..40) plus a bright bar whose row depends on the class."""
    x = rng.integers(0, 40, size=(len(labels), 28, 28), dtype=np.uint8)
    rows = 2 * labels + 4
    x[np.arange(len(labels))[:, None], rows[:, None] + np.array([0, 1]), 4:24] = 255
    return x


def write_planted(folder: Path) -> dict[str, int]:
    """A dataset with known per-class counts; returns the official indices of the plants."""
    rng = np.random.default_rng(7)
    y_train = rng.permutation(np.repeat(np.arange(10), TRAIN_PER_CLASS))
    y_test = rng.permutation(np.repeat(np.arange(10), TEST_PER_CLASS))
    x_train = dim_images(y_train, rng)
    bright = int(np.flatnonzero(y_train == BRIGHT_CLASS)[4])
    dark = int(np.flatnonzero(y_train == DARK_CLASS)[2])
    x_train[bright] = 255
    x_train[dark] = 0
    for role, array in (("train_images", x_train), ("train_labels", y_train),
                        ("test_images", dim_images(y_test, rng)), ("test_labels", y_test)):
        write_idx(folder / FILES[role], array.astype(np.uint8))
    return {"bright": bright, "dark": dark}


def compose_eda(overrides: list[str]) -> DictConfig:
    """The config `python -m mnistlab.eda OVERRIDES` runs (conf/eda.yaml)."""
    return compose_config(overrides, "eda")


# ---------------------------------------------------------------- experiments and tiny sweeps

SWEEPS = sorted(p.stem for p in (REPO_ROOT / "sweeps").glob("*.yaml"))
# SEED.md's table: backend, batch, epochs, lr, dropout, optimizer, aug, L2 weight
STUDY = {
    "study/tf_run1": ("keras", 50, 3, 1e-3, 0.5, "rmsprop", "none", 0.0),
    "study/tf_run2": ("keras", 50, 25, 1e-4, 0.5, "rmsprop", "flip", 1e-3),
    "study/tf_run3": ("keras", 50, 25, 1e-4, 0.2, "adam", "shift_rotate", 1e-4),
    "study/pt_run1": ("lightning", 128, 25, 1e-3, 0.1, "sgd", "none", 0.0),
    "study/pt_run2": ("lightning", 50, 25, 1e-5, 0.2, "rmsprop", "flip", 1e-3),
    "study/pt_run3": ("lightning", 50, 25, 1e-5, 0.2, "adam", "shift_rotate", 1e-4),
}
TINY_SWEEP = ("trainer=debug", "data.val_size=100", "logger=none")


def multirun(tmp_path: Path, data: Path, *overrides: str) -> tuple[subprocess.CompletedProcess,
                                                                   Path]:
    """A tiny sweep in tmp_path/out/multirun/<time> (or in the hydra.sweep.dir it is given); in
    this process, but for launchers that start processes of their own."""
    out = tmp_path / "out"
    own_processes = any(o.startswith("hydra/launcher=") and o != "hydra/launcher=basic"
                        for o in overrides)
    launch = run_train if own_processes else train_here
    done = launch("-m", f"paths.data={data}", *TINY_SWEEP, *overrides, output=out)
    given = [o.split("=", 1)[1] for o in overrides if o.startswith("hydra.sweep.dir=")]
    [sweep_dir] = [Path(d) for d in given] or list((out / "multirun").iterdir())
    return done, sweep_dir


def jobs_and_report(sweep_dir: Path) -> tuple[list[Path], list[dict[str, str]]]:
    jobs = sorted(d for d in sweep_dir.iterdir() if (d / "summary.json").is_file())
    with (sweep_dir / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    for name in ("report.md", "curves.png", "ablation.png"):
        assert (sweep_dir / name).is_file(), name
    return jobs, rows


# ---------------------------------------------------------------- run directories, hand-built

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METRICS_HEADER = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds"]
FALLING = [0.5, 0.3, 0.2, 0.15, 0.12]
# where the runs' configs say their files are: the same on every machine
MACHINE_FREE_PATHS = ("paths.root=/mnistlab", "paths.data=/mnistlab/data",
                      "paths.output=/mnistlab/outputs", "logger.mode=offline")


@functools.cache
def _run_config(overrides: tuple[str, ...]) -> dict[str, Any]:
    cfg = compose_config([*overrides, *MACHINE_FREE_PATHS])
    return OmegaConf.to_container(cfg, resolve=True)


def run_config(overrides: list[str]) -> dict[str, Any]:
    """The resolved config `python train.py OVERRIDES` runs, as .hydra/config.yaml holds it."""
    return copy.deepcopy(_run_config(tuple(overrides)))


def make_run(
    run_dir: Path,
    *,
    optimizer: str = "adam",
    lr: float = 0.001,
    aug: str = "none",
    results: dict[str, Any] | None = None,
    train_loss: list[float] | None = FALLING,
    val_loss: list[float] | None = FALLING,
    overrides: list[str] | None = None,
    error: str | None = None,
    seed: int = 42,
    backend: str = "lightning",
    settings: dict[str, Any] | None = None,
    confusion: str | None = None,
) -> Path:
    """Write a run dir the way the framework does: .hydra/, metrics.csv, summary.json.

    The config is composed from conf/ (optimizer, lr, aug, backend and seed as overrides, 5
    epochs); ``settings`` then sets dotted keys ("model.dropout": 0.5) over it, as a run's other
    overrides would; ``overrides`` is what overrides.yaml records; ``confusion`` is written as
    confusion.csv.
    """
    hydra = run_dir / ".hydra"
    hydra.mkdir(parents=True)
    config = run_config([f"optimizer={optimizer}", f"optimizer.lr={lr}", f"aug={aug}",
                         f"backend={backend}", f"trainer.seed={seed}", "trainer.max_epochs=5"])
    for key, value in (settings or {}).items():
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if overrides is None:
        overrides = [f"optimizer={optimizer}", f"aug={aug}", "trainer.max_epochs=5"]
    (hydra / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if confusion is not None:
        (run_dir / "confusion.csv").write_text(confusion)
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (hydra / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"mode": "MULTIRUN"}}))
    if train_loss is not None and val_loss is not None:
        with (run_dir / "metrics.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(METRICS_HEADER)
            for i, (tl, vl) in enumerate(zip(train_loss, val_loss, strict=True)):
                writer.writerow([i + 1, tl, 0.8 + 0.03 * i, vl, 0.85 + 0.02 * i, 0.001, 2.5])
    results = results or dict(train_acc=0.98, val_acc=0.975, test_acc=0.974, best_val_acc=0.976,
                              best_epoch=5, wall_seconds=10.0)  # fmt: skip
    summary = {
        "status": "failed" if error else "completed",
        "error": error,
        "backend": backend,
        "dataset": "mnist",
        "seed": seed,
        "epochs_completed": len(train_loss or []),
        "params": 1234,
        "train_loss": None if error else 0.12,
        "val_loss": None if error else 0.2,
        "test_loss": None if error else 0.2,
        "train_samples_per_second": None if error else 4000.0,
        "overrides": overrides,
        **results,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def check_tiny_grid(tiny_data: Path, tmp_path: Path, launcher: str) -> None:
    """optimizer x backend (4 jobs) under a launcher: four completed rows in the report, and the
    same command again skips all four."""
    done, sweep_dir = multirun(tmp_path, tiny_data, "optimizer=adam,rmsprop",
                               "backend=keras,lightning", f"hydra/launcher={launcher}")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs, rows = jobs_and_report(sweep_dir)
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert {(r["optimizer.name"], r["backend.name"]) for r in rows} == {
        ("adam", "keras"), ("adam", "lightning"), ("rmsprop", "keras"), ("rmsprop", "lightning")}
    again, _ = multirun(tmp_path, tiny_data, "optimizer=adam,rmsprop", "backend=keras,lightning",
                        f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep_dir}")
    assert again.returncode == 0 and "jobs: 4 skipped, 0 resumed, 0 started" in again.stdout
