"""One training run: validate, load data, train with the chosen backend, write the outputs."""

from __future__ import annotations

import gc
import math
import time
from typing import Any

import psutil
from omegaconf import DictConfig

from mnistlab.backends import get_backend
from mnistlab.config.checks import check_data, validate
from mnistlab.data import Splits, load_splits
from mnistlab.data.catalog import known_spec
from mnistlab.errors import DiskFullError
from mnistlab.run.confusion import write_errors
from mnistlab.run.lifecycle import Job, Tracking, run_job, sweep_group
from mnistlab.run.provenance import code_commit, machine
from mnistlab.run.summary import build_summary, print_summary, write_json_atomically
from mnistlab.run.trackers import Tracker, start_trackers
from mnistlab.run.tracking import logged_epochs, run_name, run_tags
from mnistlab.training.allocator import keep_freed_memory
from mnistlab.training.contract import FitResult, RunContext
from mnistlab.training.interrupts import stop_at_batch_boundaries
from mnistlab.training.pruning import trial_reporter
from mnistlab.training.recorder import EpochRecorder

PROCESS_STARTED = psutil.Process().create_time()  # wall-clock time the interpreter started


def sample_limits(cfg: DictConfig) -> tuple[int | None, int | None, int | None]:
    """trainer.limit_*_batches as sample counts: cut from the shared arrays, so that both
    backends train and evaluate on the same subset."""
    t, d = cfg.trainer, cfg.data
    return tuple(  # type: ignore[return-value]
        None if limit is None else limit * size
        for limit, size in ((t.limit_train_batches, d.batch_size),
                            (t.limit_val_batches, d.eval_batch_size),
                            (t.limit_test_batches, d.eval_batch_size))
    )


def check_config(cfg: DictConfig) -> None:
    """Every value and cross-key check, the chosen backend's own last (ConfigError, one line)."""
    validate(cfg)
    get_backend(cfg.backend.name).check(cfg)


class TrainingRun:
    """The training job's three steps for `run_job`; it keeps what finish needs after a failure
    (the epochs recorded so far)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.started = time.perf_counter()
        self.recorder: EpochRecorder | None = None
        self.n_train = 0
        self.trackers: list[Tracker] = []  # MLflow, TensorBoard, as the logger config asks
        self.provenance = {"commit": code_commit(), "machine": machine()}

    def prepare(self, job: Job) -> Splits:
        check_config(self.cfg)
        data = load_splits(self.cfg.data)
        if known_spec(self.cfg.data) is None:  # its shape and size are known from now on
            check_data(self.cfg, data.spec)
        data = data.limited(*sample_limits(self.cfg))
        self.provenance["data_sha256"] = data.checksums()  # `runs diff` tells data apart by them
        return data

    def execute(self, job: Job, data: Splits) -> FitResult:
        self.n_train = len(data.x_train)
        reporter = trial_reporter(self.cfg) if job.rank == 0 else None
        if job.rank == 0:
            self.trackers = start_trackers(
                self.cfg, job.run_dir, name=run_name(job.overrides), tags=run_tags(self.cfg),
                group=self.cfg.logger.get("group") or sweep_group(job.hydra_cfg))
        self.recorder = EpochRecorder(
            job.run_dir, job.wandb_run, writes=job.rank == 0,
            on_published=(lambda row: reporter.epoch(row["epoch"], row["val_acc"]))
            if reporter else None, trackers=self.trackers)
        if job.previous is not None and job.wandb_run is not None:
            self.recorder.wandb_logged = logged_epochs(job.run_dir, job.wandb_run)
        ctx = RunContext(job.run_dir, self.recorder, job.wandb_run, resume=job.previous is not None,
                         on_start=lambda: self.write_summary(job, "running"))
        with stop_at_batch_boundaries():
            try:
                result = get_backend(self.cfg.backend.name).fit(self.cfg, data, ctx)
            except DiskFullError as e:  # the command that finishes the run, once there is room
                raise DiskFullError(f"{e} with: python train.py resume={job.run_dir}") from None
        if result.test_predictions is not None:  # rank 0
            title = f"{self.cfg.backend.name}, {data.spec.title}"
            write_errors(job.run_dir, data.x_test, data.y_test, list(data.spec.classes),
                         result.test_predictions, title, job.wandb_run, step=len(self.rows))
        best = max(self.rows, key=lambda r: r["val_acc"])
        results = {"test/loss": result.test_loss, "test/acc": result.test_acc,
                   "best/val_acc": best["val_acc"], "best/epoch": best["epoch"]}
        if job.wandb_run is not None:
            job.wandb_run.summary.update(results)
        for tracker in self.trackers:
            tracker.log_results(results, step=len(self.rows))
        return result

    @property
    def rows(self) -> list[dict[str, float]]:
        return self.recorder.rows if self.recorder else []

    def write_summary(self, job: Job, status: str) -> dict[str, Any] | None:
        if job.rank > 0:
            return None
        restored = self.recorder.restored if self.recorder else 0
        first = self.recorder.first_batch_at if self.recorder else None
        summary = build_summary(
            status=status, error=job.error, cfg=self.cfg, rows=self.rows, result=job.result,
            n_train=self.n_train, wall_seconds=time.perf_counter() - self.started,
            overrides=job.overrides, resumed_from_epoch=restored if job.previous else None,
            seconds_to_first_batch=first - PROCESS_STARTED if first else None,
            provenance=self.provenance,
        )
        write_json_atomically(job.run_dir / "summary.json", summary)
        return summary

    def finish(self, job: Job) -> None:
        for tracker in self.trackers:
            tracker.finish(job.status)
        summary = self.write_summary(job, job.status)
        if summary is not None:
            print_summary(summary, self.cfg.trainer.max_epochs, job.run_dir, job.wandb_run)


def train(cfg: DictConfig) -> float:
    """Hydra task: returns the final validation accuracy (NaN if the run failed) for sweepers."""
    keep_freed_memory()  # here, where every launcher's job process starts training
    run = TrainingRun(cfg)
    try:
        job = run_job(cfg, prepare=run.prepare, execute=run.execute, finish=run.finish,
                      tracking=Tracking(job_type=cfg.backend.name, tags=run_tags(cfg)))
        return run.rows[-1]["val_acc"] if run.rows and job.status == "completed" else math.nan
    finally:  # a sweep's next job in this process starts from what this one freed
        gc.collect()
