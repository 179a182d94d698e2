"""MLflow and TensorBoard beside W&B, read back through their real servers: a 2-job sweep (one
job per backend) logged to both, `mlflow server` and `tensorboard` started on free local ports
and queried over HTTP, MLflow's run-comparison page rendered in headless Chromium, and a resumed
run continuing its MLflow run. (The names say real: CI must run these, never skip them.)"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import debug_run, make_dataset, multirun, run_dirs, train_here

TRACKED = ("logger=mlflow", "logger.extra=[tensorboard]")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tracked")
    make_dataset(tmp / "data" / "mnist")
    done, sweep_dir = multirun(tmp, tmp / "data", "backend=lightning,keras", *TRACKED,
                               f"hydra.sweep.dir={tmp / 'out' / 'sweep'}")
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


@pytest.fixture
def server() -> Iterator:
    """Starts a server command on a free port; waits until `ready` answers; stops it after."""
    started: list[subprocess.Popen] = []

    def start(command: list[str], ready: str, timeout: float = 120) -> None:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        started.append(proc)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(ready, timeout=5).close()
                return
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"{command[0]} ended: {proc.stderr.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{command[0]} did not answer in {timeout:.0f} s")
                time.sleep(0.5)

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def val_accs(job: Path) -> list[tuple[int, float]]:
    with (job / "metrics.csv").open() as f:
        return [(int(r["epoch"]), float(r["val_acc"])) for r in csv.DictReader(f)]


def test_real_mlflow_server_holds_the_sweeps_runs_and_report(sweep: Path, server,
                                                             tmp_path: Path) -> None:
    port = free_port()
    store = sweep.parent / "mlflow"
    mlflow = Path(sys.executable).with_name("mlflow")
    server([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
           f"http://127.0.0.1:{port}/health")
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    experiment = get(f"{api}/experiments/get-by-name?experiment_name=mnistlab")["experiment"]
    runs = get(f"{api}/runs/search", {"experiment_ids": [experiment["experiment_id"]]})["runs"]
    by_dir = {}
    for run in runs:
        tags = {t["key"]: t["value"] for t in run["data"].get("tags", [])}
        assert tags["mnistlab.group"] == f"multirun-{sweep.name}"
        by_dir[tags.get("mnistlab.run_dir", "report")] = run
    assert set(by_dir) == {str(sweep / "0"), str(sweep / "1"), "report"}
    for job in (sweep / "0", sweep / "1"):
        run = by_dir[str(job)]
        run_id = run["info"]["run_id"]
        history = get(f"{api}/metrics/get-history?run_id={run_id}&metric_key="
                      + urllib.parse.quote("val/acc"))["metrics"]
        assert [(m["step"], pytest.approx(m["value"])) for m in history] == val_accs(job)
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        summary = json.loads((job / "summary.json").read_text())
        assert params["backend.name"] == summary["backend"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert metrics["test/acc"] == pytest.approx(summary["test_acc"])
        assert run["info"]["status"] == "FINISHED"
    report_id = by_dir["report"]["info"]["run_id"]
    files = get(f"{api}/artifacts/list?run_id={report_id}&path=report")["files"]
    assert {"report/report.md", "report/runs.csv", "report/curves.png"} <= {
        f["path"] for f in files}

    # the run-comparison page, rendered by a real browser
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is missing (.ci/run installs it)"
    ids = json.dumps([by_dir[str(sweep / j)]["info"]["run_id"] for j in ("0", "1")])
    page = (f"http://127.0.0.1:{port}/#/compare-runs?runs={urllib.parse.quote(ids)}"
            f"&experiments={urllib.parse.quote(json.dumps([experiment['experiment_id']]))}")
    shot = tmp_path / "compare.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--window-size=1400,1000",
                    "--virtual-time-budget=20000", f"--screenshot={shot}", page],
                   capture_output=True, timeout=180, check=True)
    from PIL import Image

    image = Image.open(shot).convert("L")
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 50, "the comparison page rendered blank"
    if os.environ.get("MNISTLAB_SCREENSHOT"):  # keep it (the docs' picture)
        shutil.copy(shot, os.environ["MNISTLAB_SCREENSHOT"])


def test_real_tensorboard_server_holds_the_sweeps_runs(sweep: Path, server) -> None:
    port = free_port()
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server([str(tensorboard), "--logdir", str(sweep), "--host", "127.0.0.1", "--port",
            str(port)], f"http://127.0.0.1:{port}/data/runs", timeout=180)
    base = f"http://127.0.0.1:{port}/data"
    deadline = time.monotonic() + 60  # TensorBoard reads the event files in the background
    while sorted(get(f"{base}/runs")) != ["0/tensorboard", "1/tensorboard"]:
        assert time.monotonic() < deadline, get(f"{base}/runs")
        time.sleep(1)
    for job in ("0", "1"):
        query = urllib.parse.urlencode({"run": f"{job}/tensorboard", "tag": "val/acc"})
        points = get(f"{base}/plugin/scalars/scalars?{query}")
        assert [(step, pytest.approx(value)) for _, step, value in points] == val_accs(
            sweep / job)
    experiment = get(f"{base}/plugin/hparams/experiment", {"experimentName": ""})
    names = {h["name"] for h in experiment["hparamInfos"]}
    assert {"backend.name", "optimizer.lr", "model.name"} <= names
    assert {m["name"]["tag"] for m in experiment["metricInfos"]} >= {"val/acc", "test/acc"}


def test_real_mlflow_resumed_run_continues_its_mlflow_run(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data" / "mnist")
    run = debug_run(tmp_path / "data", tmp_path / "out", "logger=mlflow",
                    "trainer.max_epochs=1")
    first = json.loads((run / "mlflow.json").read_text())["run_id"]
    done = train_here(f"resume={run}", "trainer.max_epochs=2", output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert run_dirs(tmp_path / "out") == [run]
    assert json.loads((run / "mlflow.json").read_text())["run_id"] == first
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'out' / 'mlflow' / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(first, "val/acc")] == [1, 2]
    assert len(client.search_runs([client.get_run(first).info.experiment_id])) == 1


def test_an_unknown_extra_tracker_is_one_line(tmp_path: Path) -> None:
    make_dataset(tmp_path / "data" / "mnist")
    done = train_here("trainer=debug", f"paths.data={tmp_path / 'data'}",
                      "logger.extra=[comet]", output=tmp_path / "out")
    assert done.returncode == 2, done.stderr[-2000:]
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert "logger.extra" in line and "mlflow, tensorboard" in line
