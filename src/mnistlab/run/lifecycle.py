"""The life of one Hydra job, shared by training and the EDA: claim, prepare, track, execute,
finish.

claim: the run directory is locked for this start (`lock`: a second start is refused, a dead
holder's lock taken over) and belongs to this job's config (`rundir`): a directory holding another
config is refused before anything is written; a completed job with the same config is skipped;
an unfinished one is resumed. prepare (validate the config, read the data) may fail on bad
input: in a single run that removes a directory this start created and ends with one `error:`
line. Then the W&B run starts (the same W&B run again on resume), execute runs, and finish
always writes the job's final files.

The failure policy: a single run ends on its first error (a user error as one line, exit 2; a
crash with its traceback); a multirun job records the failure, prints one line and lets the sweep
go on (the sweep callback reports it at the end). An interrupt (Ctrl-C, SIGTERM) marks the job
`interrupted` and stops the run or the whole sweep with exit code 128 + the signal number.
"""

from __future__ import annotations

import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.errors import MnistlabError, fail
from mnistlab.run.lock import DirLock
from mnistlab.run.rundir import Previous, read_previous, save_job_config
from mnistlab.run.tracking import run_name, start_wandb, stored_wandb_id
from mnistlab.training.interrupts import RunInterrupted
from mnistlab.training.pruning import RunPruned
from mnistlab.training.ranks import global_rank

P = TypeVar("P")  # what prepare returns (the data)
R = TypeVar("R")  # what execute returns (the result)


@dataclass
class Tracking:
    """How the job appears in W&B, when logger=wandb."""

    job_type: str
    tags: list[str]
    default_name: str | None = None
    group: str | None = None


@dataclass
class Job(Generic[R]):
    """One Hydra job: where it writes, what an earlier start left there, and how it ended."""

    cfg: DictConfig
    run_dir: Path
    overrides: list[str]
    multirun: bool
    hydra_cfg: DictConfig
    previous: Previous | None = None  # set when this start resumes an earlier one
    status: str = "failed"  # "completed", "interrupted", "pruned" or "skipped" once known
    error: str | None = None
    result: R | None = None
    wandb_run: Any = field(default=None, repr=False)
    rank: int = 0  # > 0: another process of a multi-process run, which writes nothing

    @property
    def name(self) -> str:
        return f"job {self.hydra_cfg.job.num}" if self.multirun else str(self.run_dir)


def describe(error: BaseException) -> str:
    """A user error's own message; anything else as `Type: message`."""
    if isinstance(error, MnistlabError | RunInterrupted | RunPruned):
        return str(error)
    return f"{type(error).__name__}: {error}".rstrip(": ")


def sweep_group(hydra_cfg: DictConfig) -> str | None:
    """The jobs of one sweep share a W&B group: the sweep's name and start time."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    name = hydra_cfg.runtime.choices.get("sweeps") or "multirun"
    return f"{name}-{Path(hydra_cfg.sweep.dir).name}"


def _claim(job: Job, lock: DirLock) -> bool:
    """Lock the run directory, then check it; False when this job must not run (in use by
    another start, refused or completed), and then the lock is released."""
    try:
        lock.acquire()  # before anything is written: one start at a time per directory
        job.previous = read_previous(job.run_dir, job.cfg)
    except MnistlabError as e:
        lock.release()
        if not job.multirun:
            fail(e)
        job.error = str(e)
        sys.stderr.write(f"error: {job.name}: {e}\n")  # its directory stays as it was
        return False
    previous = job.previous
    if previous is not None and previous.status == "completed" and not previous.raised:
        job.status = "skipped"
        lock.release()
        print(f"{job.name}: completed earlier in {job.run_dir}; not retrained")
        return False
    save_job_config(job.run_dir, job.cfg, job.hydra_cfg, job.overrides)
    return True


def run_job(cfg: DictConfig, *, prepare: Callable[[Job], P], execute: Callable[[Job, P], R],
            finish: Callable[[Job], None], tracking: Tracking) -> Job[R]:
    """Run one job under the shared failure policy; returns it with its status and result."""
    hydra_cfg = HydraConfig.get()
    job: Job[R] = Job(cfg=cfg, run_dir=Path(hydra_cfg.runtime.output_dir),
                      overrides=list(hydra_cfg.overrides.task),
                      multirun=hydra_cfg.mode == RunMode.MULTIRUN, hydra_cfg=hydra_cfg,
                      rank=global_rank())
    if job.rank > 0:  # rank 0 owns the directory, the W&B run and the final files
        job.previous = read_previous(job.run_dir, cfg)
        job.result = execute(job, prepare(job))
        job.status = "completed"
        return job
    lock = DirLock(job.run_dir)  # rank 0 holds it for the run
    if not _claim(job, lock):
        return job
    try:
        try:
            prepared = prepare(job)
        except MnistlabError:
            if not job.multirun and job.previous is None:
                lock.release()
                shutil.rmtree(job.run_dir, ignore_errors=True)
            raise
        if cfg.logger.name == "wandb":
            job.wandb_run = start_wandb(
                cfg, job.run_dir, name=run_name(job.overrides) or tracking.default_name,
                job_type=tracking.job_type, tags=tracking.tags,
                group=tracking.group or sweep_group(hydra_cfg),
                run_id=stored_wandb_id(job.run_dir) if job.previous else None)
        job.result = execute(job, prepared)
        job.status = "completed"
    except RunPruned as e:  # the search's pruner stopped it: an answer, not a failure
        job.status, job.error = "pruned", describe(e)
        print(f"{job.name}: {job.error}")
    except RunInterrupted as e:
        job.status, job.error = "interrupted", describe(e)
        sys.stderr.write(f"{job.name}: {job.error}; the last finished epoch is kept, resume "
                         f"with: python train.py resume={job.run_dir}\n")
        raise SystemExit(128 + e.signum) from None
    except BaseException as e:
        job.error = describe(e)
        if isinstance(e, KeyboardInterrupt):
            job.status = "interrupted"
            raise SystemExit(128 + signal.SIGINT) from None
        if isinstance(e, MnistlabError) and not job.multirun:
            fail(e)  # one line, not Hydra's "Error executing job" and a traceback
        if not job.multirun:
            raise
        if isinstance(e, MnistlabError):
            sys.stderr.write(f"error: {job.name}: {job.error}\n")
        else:
            traceback.print_exc()
    finally:
        try:
            if job.run_dir.exists():
                finish(job)
            if job.wandb_run is not None:
                job.wandb_run.finish(exit_code=0 if job.status == "completed" else 1)
        finally:
            lock.release()
    return job
