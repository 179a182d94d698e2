"""Trackers with a UI that runs on the user's own machine, beside W&B: MLflow and TensorBoard.

`logger=mlflow` or `logger=tensorboard` chooses one; `logger.extra=[mlflow, tensorboard]` adds
them to any logger (W&B included), Hydra-natively (a list key of the logger group). Each gets,
from the epoch recorder both backends share, the W&B run's metric names at the same steps (the
epoch): train/loss, train/acc, val/loss, val/acc, lr, epoch_seconds; at the end test/loss,
test/acc, best/val_acc, best/epoch; and the run's resolved config (MLflow params, TensorBoard's
HParams).

- MLflow: a local store, SQLite in `<paths.output>/mlflow/mlflow.db` with its artifacts beside it
  (`logger.mlflow.tracking_uri` for a real server), an experiment per `logger.mlflow.experiment`,
  a run per training run, tagged with its sweep's group. The run's id is kept in
  `<run dir>/mlflow.json`, so a resumed run continues the same MLflow run and logs only the
  epochs its history lacks.
- TensorBoard: event files in `<run dir>/tensorboard/`, so `tensorboard --logdir outputs/` finds
  every run by its path; written with tensorboardX's writer, which imports neither TensorFlow
  nor torch for this (TensorBoard's own summary API imports TensorFlow when it is installed). A
  resumed run adds an event file there from the first epoch it trains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from mnistlab.atomic import write_atomically
from mnistlab.config import flatten
from mnistlab.run.rundir import NEUTRAL_KEYS

TRACKERS = ("mlflow", "tensorboard")
EPOCH_NAMES = {"train_loss": "train/loss", "train_acc": "train/acc", "val_loss": "val/loss",
               "val_acc": "val/acc", "lr": "lr", "epoch_seconds": "epoch_seconds"}
RESULT_NAMES = ("test/loss", "test/acc", "best/val_acc", "best/epoch")


class Tracker(Protocol):
    def log_epochs(self, rows: Iterable[dict[str, float]], restored: int) -> None:
        """The rows of the epochs it does not hold yet; `restored`: the epochs an earlier start
        trained (a tracker that cannot read its own history takes those as held)."""

    def log_results(self, results: dict[str, float], step: int) -> None: ...

    def finish(self, status: str) -> None: ...


def active(logger: DictConfig) -> list[str]:
    """The trackers of this logger config: logger.name when it is one, then logger.extra."""
    names = [logger.name, *logger.get("extra", [])]
    return [n for n in dict.fromkeys(names) if n in TRACKERS]


def run_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config's keys that can change a result, flattened (no paths, logger, ...)."""
    flat = flatten(OmegaConf.to_container(cfg, resolve=True))
    neutral = (*NEUTRAL_KEYS, "optuna", "hydra")
    return {k: v for k, v in flat.items()
            if not any(k == n or k.startswith(f"{n}.") for n in neutral)}


def mlflow_uri(cfg: DictConfig) -> str:
    uri = cfg.logger.mlflow.tracking_uri
    return uri or f"sqlite:///{Path(cfg.paths.output).resolve() / 'mlflow' / 'mlflow.db'}"


def mlflow_experiment(client: Any, cfg: DictConfig) -> str:
    """The experiment's id, made on first use with its artifacts beside the SQLite store (for
    a local store; a server keeps its own); two jobs making it at once both get it."""
    name = cfg.logger.mlflow.experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = None
    if mlflow_uri(cfg).startswith("sqlite:///") and not cfg.logger.mlflow.tracking_uri:
        artifacts = (Path(cfg.paths.output).resolve() / "mlflow" / "artifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # made by another job meanwhile (MlflowException: already exists)
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def mlflow_client(cfg: DictConfig) -> Any:
    from mlflow import MlflowClient

    if mlflow_uri(cfg).startswith("sqlite:///"):
        (Path(cfg.paths.output) / "mlflow").mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=mlflow_uri(cfg))


class MlflowTracker:
    def __init__(self, cfg: DictConfig, run_dir: Path, name: str | None, tags: list[str],
                 group: str | None) -> None:
        from mlflow.entities import Param

        self.client = mlflow_client(cfg)
        self.state = run_dir / "mlflow.json"
        known = json.loads(self.state.read_text()) if self.state.is_file() else {}
        if known.get("tracking_uri") == mlflow_uri(cfg):  # a resumed run: the same MLflow run
            self.run_id = known["run_id"]
            held = self.client.get_run(self.run_id).data.params
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run_tags = {f"mnistlab.{t.split(':', 1)[0]}": t.split(":", 1)[-1] for t in tags}
            run_tags["mnistlab.run_dir"] = str(run_dir)
            if group:
                run_tags["mnistlab.group"] = group
            run = self.client.create_run(mlflow_experiment(self.client, cfg), run_name=name,
                                         tags=run_tags)
            self.run_id, held = run.info.run_id, {}
            write_atomically(self.state, json.dumps({"tracking_uri": mlflow_uri(cfg),
                                                     "run_id": self.run_id}))
        # a param cannot change in MLflow: a resume logs only the keys it lacks (a raised
        # trainer.max_epochs keeps its first value there)
        params = [Param(k, json.dumps(v) if isinstance(v, list) else str(v))
                  for k, v in run_params(cfg).items() if k not in held]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        history = self.client.get_metric_history(self.run_id, "val/acc")
        self.logged = {m.step for m in history}

    def _metrics(self, values: dict[str, float], step: int) -> list[Any]:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        return [Metric(key, float(value), now, step) for key, value in values.items()]

    def log_epochs(self, rows: Iterable[dict[str, float]], restored: int) -> None:
        for row in rows:
            epoch = int(row["epoch"])
            if epoch in self.logged:
                continue
            values = {name: row[column] for column, name in EPOCH_NAMES.items()}
            self.client.log_batch(self.run_id, metrics=self._metrics(values, epoch))
            self.logged.add(epoch)

    def log_results(self, results: dict[str, float], step: int) -> None:
        self.client.log_batch(self.run_id, metrics=self._metrics(results, step))

    def finish(self, status: str) -> None:
        states = {"completed": "FINISHED", "interrupted": "KILLED", "pruned": "FINISHED"}
        self.client.set_tag(self.run_id, "mnistlab.status", status)
        self.client.set_terminated(self.run_id, status=states.get(status, "FAILED"))


class TensorBoardTracker:
    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        from tensorboardX.event_file_writer import EventFileWriter
        from tensorboardX.summary import hparams

        self.writer = EventFileWriter(str(run_dir / "tensorboard"))
        self.logged: set[int] = set()
        params = {k: v if isinstance(v, bool | int | float | str) else json.dumps(v)
                  for k, v in run_params(cfg).items()}
        # the HParams dashboard: the experiment (its metrics), then this session's values
        experiment, start, self._end = hparams(params, {m: 0.0 for m in (
            "val/acc", "val/loss", *RESULT_NAMES)})
        for summary in (experiment, start):
            self._write(summary, 0)
        self.writer.flush()

    def _write(self, summary: Any, step: int) -> None:
        from tensorboardX.proto import event_pb2

        self.writer.add_event(event_pb2.Event(summary=summary, wall_time=time.time(), step=step))

    def _scalars(self, values: dict[str, float], step: int) -> None:
        from tensorboardX.summary import scalar

        for key, value in values.items():
            self._write(scalar(key, float(value)), step)
        self.writer.flush()  # a kill after an epoch keeps it

    def log_epochs(self, rows: Iterable[dict[str, float]], restored: int) -> None:
        for row in rows:
            epoch = int(row["epoch"])
            if epoch > restored and epoch not in self.logged:  # earlier starts' files: theirs
                self._scalars({name: row[column] for column, name in EPOCH_NAMES.items()},
                              epoch)
                self.logged.add(epoch)

    def log_results(self, results: dict[str, float], step: int) -> None:
        self._scalars(results, step)

    def finish(self, status: str) -> None:
        self._write(self._end, 0)  # the session ended (the HParams dashboard's status)
        self.writer.close()


def start_trackers(cfg: DictConfig, run_dir: Path, *, name: str | None, tags: list[str],
                   group: str | None) -> list[Tracker]:
    """The run's MLflow and TensorBoard trackers, as its logger config asks."""
    trackers: list[Tracker] = []
    for tracker in active(cfg.logger):
        if tracker == "mlflow":
            trackers.append(MlflowTracker(cfg, run_dir, name, tags, group))
        else:
            trackers.append(TensorBoardTracker(cfg, run_dir))
    return trackers


def log_report_to_mlflow(cfg: DictConfig, sweep_dir: Path, group: str | None) -> str:
    """A sweep's report as an MLflow run of its own (named `report <sweep>`, tagged with the
    sweep's group): report.md, the tables (CSV) and the figures as artifacts. A re-run of the
    sweep logs a new report run; returns its id."""
    client = mlflow_client(cfg)
    tags = {"mnistlab.job_type": "report", "mnistlab.sweep_dir": str(sweep_dir)}
    if group:
        tags["mnistlab.group"] = group
    run = client.create_run(mlflow_experiment(client, cfg), run_name=f"report {sweep_dir.name}",
                            tags=tags)
    names = ("report.md", "runs.csv", "groups.csv", "effects.csv")
    for path in [*(sweep_dir / n for n in names), *sorted(sweep_dir.glob("*.png"))]:
        if path.is_file():
            client.log_artifact(run.info.run_id, str(path), artifact_path="report")
    client.set_terminated(run.info.run_id)
    return run.info.run_id
