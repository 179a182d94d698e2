"""eval.py, export.py and predict.py on debug runs of both backends (generated data), run in this
process as a user runs them; one real-data test: a 1-epoch MNIST run evaluated and exported."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistlab.backends import backend_names
from tests.conftest import REPO_ROOT, debug_run, make_dataset, run_dirs, script_here, train_here

BACKENDS = backend_names()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished debug run per backend, each in a folder of its own, on one tiny dataset."""
    root = tmp_path_factory.mktemp("inference")
    make_dataset(root / "data" / "mnist", train_per_class=40, test_per_class=6)
    return {b: debug_run(root / "data", root / b, f"backend={b}", "logger=none")
            for b in BACKENDS}


def command(script: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return script_here(script, *overrides, output=tmp_path / "out")


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_reproduces_the_runs_test_accuracy(runs: dict[str, Path], tmp_path: Path,
                                                backend: str) -> None:
    run = runs[backend]
    done = command("eval.py", tmp_path, f"run={run}", "eval.robustness=[rotate,hflip]",
                   "eval.strengths.rotate=[0,30]")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = run / "eval" / "best-mnist-test"
    metrics = json.loads((folder / "metrics.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert metrics["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert metrics["images"] == 60 and len(metrics["per_class_accuracy"]) == 10
    with (folder / "confusion.csv").open() as f:
        matrix = [[int(v) for v in row[1:]] for row in list(csv.reader(f))[1:]]
    assert sum(map(sum, matrix)) == 60
    assert sum(matrix[k][k] for k in range(10)) == round(metrics["accuracy"] * 60)
    rows = list(csv.DictReader((folder / "robustness.csv").open()))
    assert [(r["transform"], float(r["strength"])) for r in rows] == [
        ("rotate", 0), ("rotate", 30), ("hflip", 0), ("hflip", 1)]
    assert float(rows[0]["accuracy"]) == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert (folder / "robustness.png").stat().st_size > 0 and (folder / "wrong.png").exists()
    assert not list((run / "eval").glob(".*"))  # no temporary folder left


def test_eval_last_checkpoint_on_the_validation_split(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    run = runs[BACKENDS[0]]
    done = command("eval.py", tmp_path, f"run={run}", "eval.checkpoint=last", "eval.split=val")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "eval" / "last-mnist-val" / "metrics.json").read_text())
    assert metrics["split"] == "val" and metrics["images"] > 0
    assert metrics["checkpoint"].endswith("last.ckpt")


def test_eval_multirun_evaluates_each_run_in_a_job(runs: dict[str, Path],
                                                   tmp_path: Path) -> None:
    done = command("eval.py", tmp_path, "-m", f"run={runs['lightning']},{runs['keras']}",
                   "eval.split=train")
    assert done.returncode == 0, done.stderr[-3000:]
    for run in runs.values():
        metrics = json.loads((run / "eval" / "best-mnist-train" / "metrics.json").read_text())
        assert metrics["split"] == "train" and metrics["run"] == str(run)


def test_eval_ensemble_over_a_folder_of_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    """A folder holding run directories stands for them; the ensemble averages their softmax."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    for i, backend in enumerate(BACKENDS):
        shutil.copytree(runs[backend], folder / str(i))
    done = command("eval.py", tmp_path, f"run={folder}", "eval.ensemble=true")
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = (tmp_path / "out").rglob("ensemble.json")
    ensemble = json.loads(result.read_text())
    assert sorted(Path(r).name for r in ensemble["members"]) == ["0", "1"]
    accs = list(ensemble["members"].values())
    assert ensemble["member_mean"] == pytest.approx(np.mean(accs))
    assert 0 <= ensemble["ensemble"] <= 1 and ensemble["images"] == 60
    assert "ensemble" in done.stdout


def test_eval_bad_input_is_one_line_and_writes_nothing(runs: dict[str, Path],
                                                       tmp_path: Path) -> None:
    lightning, keras = runs["lightning"], runs["keras"]
    bare = tmp_path / "no-checkpoint"
    shutil.copytree(lightning, bare, ignore=shutil.ignore_patterns("checkpoints", "eval"))
    line = one_error_line(command("eval.py", tmp_path, f"run={bare}"))
    assert "no checkpoint" in line and str(bare) in line
    line = one_error_line(command("eval.py", tmp_path, f"run={lightning}",
                                  f"eval.checkpoint={keras / 'checkpoints' / 'best.keras'}"))
    assert "is a keras checkpoint" in line and "backend=lightning" in line
    line = one_error_line(command("eval.py", tmp_path, f"run={bare.parent / 'nothing'}"))
    assert "not a training run's directory" in line
    line = one_error_line(command("eval.py", tmp_path, f"run={lightning}",
                                  "eval.robustness=[blur]"))
    assert "unknown option 'blur'" in line
    assert not (bare / "eval").exists()
    # the commands' own folders (outputs/eval/<time>/, their logs) went with the errors
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_eval_data_of_another_image_shape_is_one_line(runs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    run = runs["lightning"]
    before = sorted(p.name for p in (run / "eval").glob("*")) if (run / "eval").exists() else []
    line = one_error_line(command("eval.py", tmp_path, f"run={run}", "eval.data=digits"))
    assert "eval.data=digits" in line and "8x8x1" in line and "28x28x1" in line
    after = sorted(p.name for p in (run / "eval").glob("*")) if (run / "eval").exists() else []
    assert after == before


def write_inputs(folder: Path, run: Path) -> list[Path]:
    """Three test images of the run's dataset as PNGs (one on a light background), and a file
    that is not an image."""
    from mnistlab.inference.runs import open_run

    x = open_run(run).splits().x_test
    folder.mkdir()
    paths = []
    for i in range(3):
        image = x[i, :, :, 0] if i != 2 else 255 - x[i, :, :, 0]  # the last: dark on light
        paths.append(folder / f"{i}.png")
        Image.fromarray(image).save(paths[-1])
    (folder / "broken.png").write_text("not a png")
    return paths


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_checks_onnx_and_predict_agrees(runs: dict[str, Path], tmp_path: Path,
                                               backend: str) -> None:
    run = runs[backend]
    done = command("export.py", tmp_path, f"run={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run / "export" / "check.json").read_text())
    assert report["predictions_differing_from_fp32"] == 0
    assert report["max_abs_logit_difference"] <= report["tolerance"]
    assert set(report["onnxruntime_images_per_second"]) == {"1", "256"}
    onnx_file = run / "export" / "model.onnx"

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_file)).metadata_props}
    assert json.loads(meta["mnistlab.classes"]) == [str(k) for k in range(10)]
    assert json.loads(meta["mnistlab.input_shape"]) == [28, 28, 1]

    inputs = write_inputs(tmp_path / "images", run)
    by_run = command("predict.py", tmp_path, f"run={run}", f"inputs={tmp_path / 'images'}")
    by_onnx = command("predict.py", tmp_path, f"model={onnx_file}",
                      f"inputs={tmp_path / 'images'}")
    predictions = []
    for done in (by_run, by_onnx):
        assert done.returncode == 0, done.stderr[-3000:]
        assert "broken.png: not an image" in done.stderr
        [out] = sorted((tmp_path / "out").rglob("predictions.json"),
                       key=lambda p: p.stat().st_mtime)[-1:]
        predictions.append(json.loads(out.read_text())["predictions"])
    for ours, theirs in zip(*predictions, strict=True):
        assert ours["class"] == theirs["class"]
        assert ours["probability"] == pytest.approx(theirs["probability"], abs=1e-4)
    assert [Path(p["file"]).name for p in predictions[0]] == [p.name for p in inputs]
    assert [p["inverted"] for p in predictions[0]] == [False, False, True]
    assert len(predictions[0][0]["top"]) == 3


def test_predict_on_onnx_imports_neither_torch_nor_tensorflow(runs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    run = runs["lightning"]
    if not (run / "export" / "model.onnx").exists():
        assert command("export.py", tmp_path, f"run={run}").returncode == 0
    write_inputs(tmp_path / "images", run)
    code = ("import runpy, sys\n"
            f"sys.argv = ['predict.py', 'model={run / 'export' / 'model.onnx'}', "
            f"'inputs={tmp_path / 'images'}', 'paths.output={tmp_path / 'out'}']\n"
            "runpy.run_path('predict.py', run_name='__main__')\n"
            "loaded = sorted(m for m in ('torch', 'tensorflow', 'keras', 'jax') "
            "if m in sys.modules)\n"
            "print('FRAMEWORKS', loaded)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FRAMEWORKS []" in done.stdout


def test_predict_on_a_corrupt_onnx_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    (tmp_path / "x.png").write_bytes(b"")
    line = one_error_line(command("predict.py", tmp_path, f"model={bad}",
                                  f"inputs={tmp_path / 'x.png'}"))
    assert "not a readable ONNX model" in line and str(bad) in line


@pytest.mark.slow
def test_real_mnist_one_epoch_eval_and_onnx_agree(real_data: Path, tmp_path: Path) -> None:
    """The issue's real-data check: eval.py reproduces a 1-epoch MNIST run's test accuracy, and
    its ONNX export agrees with the framework on all 10,000 test images."""
    done = train_here(f"paths.data={real_data}", "trainer.max_epochs=1", "logger=none",
                      "trainer.progress_bar=false", output=tmp_path / "train")
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path / "train")
    summary = json.loads((run / "summary.json").read_text())
    assert command("eval.py", tmp_path, f"run={run}").returncode == 0
    metrics = json.loads((run / "eval" / "best-mnist-test" / "metrics.json").read_text())
    assert metrics["images"] == 10_000
    assert metrics["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-6)
    assert command("export.py", tmp_path, f"run={run}").returncode == 0
    report = json.loads((run / "export" / "check.json").read_text())
    print(f"real MNIST, 1 epoch: test_acc {summary['test_acc']}, eval {metrics['accuracy']}, "
          f"onnx {report}")
    assert report["images"] == 10_000 and report["predictions_differing_from_fp32"] == 0


def test_a_report_shows_the_evaluated_robustness_per_group(runs: dict[str, Path],
                                                           tmp_path: Path) -> None:
    """eval.py over a folder of runs, then the report: a robustness table per transform with a
    row per group (here: per backend) and the figure."""
    from mnistlab.report.write import write_report

    folder = tmp_path / "sweep"
    folder.mkdir()
    for i, backend in enumerate(BACKENDS):
        shutil.copytree(runs[backend], folder / str(i))
    done = command("eval.py", tmp_path, f"run={folder}", "eval.robustness=[rotate]",
                   "eval.strengths.rotate=[0,45]")
    assert done.returncode == 0, done.stderr[-3000:]
    report = write_report([folder], folder, show=False)
    text = (folder / "report.md").read_text()
    section = text[text.index("## Robustness"):]
    assert "### rotate" in section and "| group | 0 | 45 |" in section
    assert all(f"backend.name={b}" in section for b in BACKENDS)
    assert report.paths["robustness.png"].stat().st_size > 0


def test_eval_of_a_tracked_run_is_a_wandb_run_of_job_type_eval(tmp_path: Path) -> None:
    """A run tracked in W&B (offline) gets an eval run beside it, read back with W&B's reader."""
    make_dataset(tmp_path / "data" / "mnist")
    run = debug_run(tmp_path / "data", tmp_path / "train")
    assert (run / "wandb").is_dir()
    assert command("eval.py", tmp_path, f"run={run}").returncode == 0
    [piece] = (run / "eval" / "best-mnist-test" / "wandb").glob("offline-run-*")
    wandb_cli = Path(sys.executable).with_name("wandb")
    records = subprocess.run([str(wandb_cli), "leet", "inspect", "--json", str(piece)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
    assert '"job_type":"eval"' in records
    summary = subprocess.run([str(wandb_cli), "leet", "inspect", "--summary", "--json",
                              str(piece)], capture_output=True, text=True, timeout=120,
                             check=True).stdout
    metrics = json.loads((run / "eval" / "best-mnist-test" / "metrics.json").read_text())
    assert json.loads(summary)["summary"]["eval/accuracy"] == pytest.approx(metrics["accuracy"])
