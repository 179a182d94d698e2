"""`python -m mnistlab.eda` runs: exact counts on the trainers' split, planted outliers found, valid
figures, W&B, one error line for bad input, the real MNIST's official counts. Its config and data
checks in this process: tests/eda/test_explore.py."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from mnistlab.config import REPO_ROOT
from mnistlab.data import load_splits
from mnistlab.eda.explore import FIGURES
from tests.conftest import (
    BRIGHT_CLASS,
    DARK_CLASS,
    FILES,
    PNG_SIGNATURE,
    TEST_PER_CLASS,
    TRAIN_PER_CLASS,
    VAL_SIZE,
    compose_eda,
    write_planted,
)

SRC = REPO_ROOT / "src"
OFFICIAL_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_SHA256 = {
    "train_images": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train_labels": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "test_images": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "test_labels": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def run_eda(*overrides: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    env.pop("HYDRA_FULL_ERROR", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "mnistlab.eda", *overrides],
                          capture_output=True, text=True, env=env, timeout=timeout)


def only_run_dir(out: Path) -> Path:
    runs = [p for p in (out / "eda").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One logger=none run of the app on the planted dataset, shared by the tests below."""
    tmp = tmp_path_factory.mktemp("eda")
    plants = write_planted(tmp / "data" / "mnist")
    overrides = [f"paths.data={tmp / 'data'}", f"data.val_size={VAL_SIZE}", "logger=none"]
    result = run_eda(*overrides, f"paths.output={tmp / 'out'}", "samples_per_class=4")
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp / "out")
    return {
        "run_dir": run_dir,
        "stats": json.loads((run_dir / "stats.json").read_text()),
        "plants": plants,
        "splits": load_splits(compose_eda(overrides).data),
    }


def test_counts_are_exact_per_split_and_class(planted: dict[str, Any]) -> None:
    stats, splits = planted["stats"], planted["splits"]
    counts = stats["counts"]
    assert counts["train"] == np.bincount(splits.y_train, minlength=10).tolist()
    assert counts["val"] == np.bincount(splits.y_val, minlength=10).tolist()
    assert counts["test"] == TEST_PER_CLASS
    assert [t + v for t, v in zip(counts["train"], counts["val"], strict=True)] == TRAIN_PER_CLASS
    assert stats["totals"] == {"train": sum(TRAIN_PER_CLASS) - VAL_SIZE, "val": VAL_SIZE,
                               "test": sum(TEST_PER_CLASS)}
    assert stats["classes"] == [str(d) for d in range(10)]


def test_pixel_stats_match_numpy(planted: dict[str, Any]) -> None:
    splits, pixels = planted["splits"], planted["stats"]["pixels"]
    x = np.concatenate([splits.x_train, splits.x_val]) / 255
    y = np.concatenate([splits.y_train, splits.y_val])
    assert pixels["mean"] == pytest.approx(x.mean(), abs=1e-5)
    assert pixels["std"] == pytest.approx(x.std(), abs=1e-5)
    for entry in pixels["per_class"]:
        assert entry["mean"] == pytest.approx(x[y == entry["label"]].mean(), abs=1e-5)
        assert entry["std"] == pytest.approx(x[y == entry["label"]].std(), abs=1e-5)


@pytest.mark.parametrize(("plant", "label", "ink_kind"), [
    ("bright", BRIGHT_CLASS, "ink_high"),
    ("dark", DARK_CLASS, "ink_low"),
])
def test_planted_outlier_is_found_both_ways(planted: dict[str, Any], plant: str, label: int,
                                            ink_kind: str) -> None:
    index = planted["plants"][plant]
    split = "val" if index in set(planted["splits"].val_index.tolist()) else "train"
    entry = planted["stats"]["outliers"]["per_class"][label]
    assert entry["farthest_from_mean"][0]["index"] == index
    assert entry["farthest_from_mean"][0]["split"] == split
    assert len(entry["farthest_from_mean"]) == 5
    assert entry["ink"][0] == {"index": index, "split": split, "kind": ink_kind,
                               "score": 784.0 if plant == "bright" else 0.0}
    with (planted["run_dir"] / "outliers.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["index"] == str(index)]
    assert {(r["kind"], r["rank"], r["label"], r["split"]) for r in rows} == {
        ("farthest_from_mean", "1", str(label), split), (ink_kind, "1", str(label), split)
    }


def test_every_file_is_written_and_each_figure_is_a_png(planted: dict[str, Any]) -> None:
    run_dir = planted["run_dir"]
    assert (run_dir / "outliers.csv").is_file()
    assert not (run_dir / "wandb").exists()  # logger=none
    for name in FIGURES:
        path = run_dir / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = imread(path).shape
        assert 500 <= width <= 4000 and 400 <= height <= 4000, (name, width, height)


def test_sha256_of_each_file_read(planted: dict[str, Any]) -> None:
    import hashlib

    files = planted["stats"]["files"]
    assert set(files) == set(FILES)
    for entry in files.values():
        assert entry["sha256"] == hashlib.sha256(Path(entry["path"]).read_bytes()).hexdigest()


def test_wandb_offline_run(tmp_path: Path, tiny_data: Path) -> None:
    out = tmp_path / "out"
    result = run_eda(f"paths.data={tiny_data}", "data.val_size=100", f"paths.output={out}",
                     "logger=wandb", "samples_per_class=2", "outliers_per_class=2")
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(out)
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("run-*.wandb"))
    media = offline[0] / "files" / "media"
    assert {p.name.split("_0_")[0] for p in media.glob("images/figures/*.png")} == set(FIGURES)
    assert {p.name.split("_0_")[0] for p in media.glob("table/tables/*.table.json")} == {
        "class_stats", "outliers"}
    assert {p.name for p in run_dir.glob("*.png")} == {f"{n}.png" for n in FIGURES}


@pytest.mark.parametrize("case", ["samples_per_class=0", "corrupt"])
def test_bad_input_is_one_error_line(tmp_path: Path, tiny_data: Path, case: str) -> None:
    extra = [case]
    if case == "corrupt":
        (tiny_data / "mnist" / FILES["train_images"]).write_bytes(b"not a gzip file")
        extra = []
    out = tmp_path / "out"
    result = run_eda(f"paths.data={tiny_data}", "data.val_size=100", f"paths.output={out}",
                     "logger=none", *extra, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert ("corrupt data file" if case == "corrupt" else "samples_per_class=0") in lines[0]
    assert not any((out / "eda").iterdir())  # the run dir of a failed run is removed


def test_real_mnist_official_counts_and_sha256(tmp_path: Path, real_data: Path) -> None:
    out = tmp_path / "out"
    result = run_eda(f"paths.data={real_data}", f"paths.output={out}", "logger=none")
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(out)
    stats = json.loads((run_dir / "stats.json").read_text())
    counts = stats["counts"]
    assert [t + v for t, v in zip(counts["train"], counts["val"], strict=True)] == OFFICIAL_TRAIN
    assert counts["test"] == OFFICIAL_TEST
    assert stats["totals"] == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert {role: f["sha256"] for role, f in stats["files"].items()} == MNIST_SHA256
    assert stats["pixels"]["mean"] == pytest.approx(0.1307, abs=5e-5)
    assert stats["pixels"]["std"] == pytest.approx(0.3081, abs=5e-5)
    assert all((run_dir / f"{name}.png").stat().st_size > 10_000 for name in FIGURES)
