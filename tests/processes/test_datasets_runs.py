"""Datasets other than MNIST through `train.py`, the EDA and a sweep's report: a generated
3-class RGB 32x32 image folder and an .npz of it, and scikit-learn's 8x8 digits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import load_splits
from tests.conftest import COLOURS, make_image_folder, run_dirs, train_here
from tests.data.conftest import compose_data
from tests.processes.test_eda_runs import only_run_dir, run_eda

CLASSES = list(COLOURS)
SMALL = ("trainer=debug", "logger=none", "data.val_size=6", "data.batch_size=8",
         "data.eval_batch_size=16")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "shapes")


def confusion(run: Path) -> list[list[str]]:
    with (run / "confusion.csv").open() as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_an_image_folder_and_its_npz_train_on_both_backends(folder: Path, tmp_path: Path,
                                                            backend: str) -> None:
    s = load_splits(compose_data(["data=image_folder", f"data.dir={folder}", "data.val_size=6"]))
    npz = tmp_path / "shapes.npz"
    np.savez(npz, x_train=np.concatenate([s.x_train, s.x_val]),
             y_train=np.concatenate([s.y_train, s.y_val]), x_test=s.x_test, y_test=s.y_test,
             classes=np.array(CLASSES))
    for data in (["data=image_folder", f"data.dir={folder}"], ["data=npz", f"data.path={npz}"]):
        out = tmp_path / data[0].removeprefix("data=")
        done = train_here(*SMALL, f"backend={backend}", *data, output=out)
        assert done.returncode == 0, done.stderr[-3000:]
        [run] = run_dirs(out)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["dataset"] == data[0][5:]
        table = confusion(run)
        assert len(table) == 4 and all(len(row) == 4 for row in table)  # 3x3 with names
        assert CLASSES[0] in table[1][0] and CLASSES[2] in table[3][0]


def test_the_eda_and_a_sweep_report_over_an_image_folder(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "eda-out"
    done = run_eda("data=image_folder", f"data.dir={folder}", "data.val_size=6",
                   f"paths.output={out}", "logger=none")
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((only_run_dir(out) / "stats.json").read_text())
    assert stats["classes"] == CLASSES and stats["input_shape"] == [32, 32, 3]

    done = train_here("-m", *SMALL, "data=image_folder", f"data.dir={folder}",
                      "optimizer=adam,rmsprop", output=tmp_path / "sweep")
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = list((tmp_path / "sweep" / "multirun").iterdir())
    jobs = sorted(d for d in sweep.iterdir() if (d / "summary.json").is_file())
    assert len(jobs) == 2
    report = (sweep / "report.md").read_text()
    assert "adam" in report and "rmsprop" in report
    for job in jobs:
        assert len(confusion(job)) == 4


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_digits_train_with_an_mlp_and_a_padded_cnn(tmp_path: Path, backend: str) -> None:
    for model in (["model=mlp"], ["model=cnn", "model.padding=same"]):
        out = tmp_path / model[-1].replace("=", "-")
        done = train_here("trainer=debug", "logger=none", "data=digits", f"backend={backend}",
                          *model, output=out)
        assert done.returncode == 0, done.stderr[-3000:]
        [run] = run_dirs(out)
        assert json.loads((run / "summary.json").read_text())["status"] == "completed"


def test_an_unpadded_cnn_on_digits_is_refused_in_one_line(tmp_path: Path) -> None:
    done = train_here("trainer=debug", "logger=none", "data=digits", output=tmp_path / "out")
    assert done.returncode != 0
    [line] = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "8x8" in line and "model.padding=same" in line and "model=mlp" in line, line
    assert not (tmp_path / "out").exists() or not run_dirs(tmp_path / "out")
