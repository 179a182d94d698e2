"""sweeps=optuna on current Optuna: a pruned search (summaries, report, study), resuming it
without retraining pruned trials, the journal storage, the study read by a fresh process and
served by optuna-dashboard, and bad sweeper settings as one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import multirun

# four epochs, pruned from the second trial on when worse than the median at the same epoch
PRUNED = ("sweeps=optuna", "trainer.max_epochs=4", "hydra.sweeper.pruner.name=median",
          "hydra.sweeper.pruner.n_startup_trials=1")


def study_of(sweep: Path, storage: str | None = None) -> optuna.Study:
    from mnistlab.training.pruning import open_storage

    return optuna.load_study(study_name="mnistlab",
                             storage=open_storage(storage or f"sqlite:///{sweep}/optuna.db"))


def summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


@pytest.fixture(scope="module")
def pruned_search(tmp_path_factory: pytest.TempPathFactory, tiny_data_module: Path
                  ) -> tuple[Path, Path]:
    """A 6-trial median-pruned search, 2 trials at a time, on the tiny data."""
    tmp = tmp_path_factory.mktemp("search")
    done, sweep = multirun(tmp, tiny_data_module, *PRUNED, "hydra.sweeper.n_trials=6",
                           "hydra.sweeper.n_jobs=2", f"hydra.sweep.dir={tmp / 'sweep'}")
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp, sweep


@pytest.fixture(scope="module")
def tiny_data_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import make_dataset

    root = tmp_path_factory.mktemp("data")
    make_dataset(root / "mnist", train_per_class=60)
    return root


def test_pruned_trials_stop_early_and_say_so(pruned_search: tuple[Path, Path]) -> None:
    _, sweep = pruned_search
    study = study_of(sweep)
    states = {t.number: t.state for t in study.trials}
    assert len(states) == 6 and set(states.values()) <= {TrialState.COMPLETE, TrialState.PRUNED}
    pruned = [n for n, s in states.items() if s == TrialState.PRUNED]
    assert pruned, "a median pruner over six trials of random lr pruned none"
    for number, state in states.items():
        job = sweep / str(number)
        s = summary(job)
        if state == TrialState.PRUNED:
            assert s["status"] == "pruned" and s["test_acc"] is None
            assert 1 <= s["pruned_at_epoch"] == s["epochs_completed"] < 4
            # the trial's last report is the run's last validation accuracy
            trial = study.trials[number]
            assert trial.value == pytest.approx(s["val_acc"])
            assert max(trial.intermediate_values) == s["pruned_at_epoch"]
        else:
            assert s["status"] == "completed" and s["epochs_completed"] == 4
            assert s["pruned_at_epoch"] is None
            assert study.trials[number].value == pytest.approx(s["val_acc"])
    report = (sweep / "report.md").read_text()
    assert f"{6 - len(pruned)} completed, {len(pruned)} pruned, 0 failed" in report
    assert "## Pruned runs" in report
    assert all(f"- `{n}`: after epoch" in report for n in pruned)


def test_a_resumed_search_adds_trials_without_retraining(pruned_search: tuple[Path, Path],
                                                         tiny_data_module: Path) -> None:
    tmp, sweep = pruned_search
    before = {job.name: (job / "summary.json").stat().st_mtime_ns
              for job in sweep.iterdir() if (job / "summary.json").is_file()}
    done, _ = multirun(tmp, tiny_data_module, *PRUNED, "hydra.sweeper.n_trials=7",
                       "hydra.sweeper.n_jobs=2", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(sweep)
    assert [t.number for t in study.trials] == list(range(7))
    after = {job: (sweep / job / "summary.json").stat().st_mtime_ns for job in before}
    assert after == before  # neither the completed nor the pruned trials trained again


def test_a_fresh_process_reads_every_trial(pruned_search: tuple[Path, Path]) -> None:
    _, sweep = pruned_search
    code = ("import optuna\n"
            f"s = optuna.load_study(study_name='mnistlab', storage='sqlite:///{sweep}/optuna.db')\n"
            "for t in s.trials:\n"
            "    print(t.number, t.state.name, t.value, sorted(t.params))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) >= 6
    keys = "['data.batch_size', 'model.dropout', 'optimizer.lr', 'regularization.weight']"
    assert all(line.endswith(keys) and line.split()[1] in ("COMPLETE", "PRUNED")
               for line in lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_optuna_dashboard_serves_the_study(pruned_search: tuple[Path, Path]) -> None:
    """optuna-dashboard, the current Optuna UI, on a free local port: its study list and the
    study's trials over HTTP."""
    _, sweep = pruned_search
    port = free_port()
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(dashboard), f"sqlite:///{sweep}/optuna.db", "--host",
                               "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/api/studies"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    studies = json.load(answer)["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
                time.sleep(0.5)
        [study] = studies
        assert study["study_name"] == "mnistlab"
        with urllib.request.urlopen(f"{url}/{study['study_id']}?after=0", timeout=30) as answer:
            trials = json.load(answer)["trials"]
        assert len(trials) >= 6
        assert {t["state"] for t in trials} <= {"Complete", "Pruned"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_journal_storage_holds_the_study(tmp_path: Path, tiny_data_module: Path) -> None:
    done, sweep = multirun(tmp_path, tiny_data_module, *PRUNED, "hydra.sweeper.n_trials=2",
                           "hydra.sweeper.storage=journal", f"hydra.sweep.dir={tmp_path / 's'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (sweep / "optuna.db").exists()
    study = study_of(sweep, f"journal:{sweep / 'optuna.journal'}")
    assert len(study.trials) == 2
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}


@pytest.mark.parametrize(("override", "message"), [
    ("hydra.sweeper.sampler.name=annealing", "unknown option 'annealing' for "
                                             "hydra.sweeper.sampler.name"),
    ("hydra.sweeper.pruner.name=bisect", "unknown option 'bisect' for hydra.sweeper.pruner.name"),
    ("hydra.sweeper.pruner.min_resource=2", "hydra.sweeper.pruner.min_resource"),
    ("hydra.sweeper.storage=null", "needs a storage the jobs can reach"),
])
def test_bad_sweeper_settings_are_one_line(tmp_path: Path, tiny_data_module: Path,
                                           override: str, message: str) -> None:
    done, sweep = multirun(tmp_path, tiny_data_module, *PRUNED, "hydra.sweeper.n_trials=1",
                           override, f"hydra.sweep.dir={tmp_path / 's'}")
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("error: ")]
    assert message in line
    assert not (sweep / "0").exists()  # no job started


@pytest.mark.parametrize("name", ["tpe", "random", "cmaes", "grid"])
def test_samplers_by_name(name: str) -> None:
    from omegaconf import OmegaConf

    from mnistlab.sweepers.optuna import OptunaSweeper

    sweeper = OptunaSweeper("maximize", "s", None, 4, 1, OmegaConf.create({"name": name,
                                                                         "seed": 1}),
                            OmegaConf.create({"name": "none"}), None)
    space, fixed = sweeper.search_space(["model.dropout=choice(0.1,0.2)", "data.batch_size=64"])
    assert fixed == ["data.batch_size=64"]
    sampler = sweeper.sampler(space, n_existing=0)
    expected = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler",
                "grid": "GridSampler"}[name]
    assert type(sampler).__name__ == expected
    if name == "grid":  # a grid of intervals has no points
        space, _ = sweeper.search_space(["optimizer.lr=interval(0.001, 0.01)"])
        with pytest.raises(Exception, match="needs choice"):
            sweeper.sampler(space, n_existing=0)


def test_a_grid_search_runs_every_point_once(tmp_path: Path, tiny_data_module: Path) -> None:
    """Three trials asked of a two-point grid: the search ends when the grid is done."""
    done, sweep = multirun(tmp_path, tiny_data_module, "sweeps=optuna", "hydra.sweeper.n_trials=3",
                           "hydra.sweeper.sampler.name=grid", "model.dropout=choice(0.1,0.3)",
                           # fixed on the command line: no longer searched
                           "optimizer.lr=0.001", "regularization.weight=0.0001",
                           "data.batch_size=50", f"hydra.sweep.dir={tmp_path / 's'}")
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(sweep)
    assert sorted(t.params["model.dropout"] for t in study.trials) == [0.1, 0.3]
