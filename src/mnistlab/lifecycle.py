"""The life of one Hydra job, shared by training and the EDA: prepare, track, execute, finish.

prepare (validate the config, read the data) may fail on bad input: in a single run that removes
the run directory and ends with one `error:` line, so nothing half-written is left. Then the W&B
run starts (logger=wandb), execute runs, and finish always writes the job's final files. The
failure policy: a single run ends on its first error (a user error as one line, exit 2; a crash
with its traceback); a multirun job records the failure, prints one line and lets the sweep go
on (the sweep callback reports it at the end). Ctrl-C always stops everything.
"""

from __future__ import annotations

import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.cli import fail
from mnistlab.errors import MnistlabError
from mnistlab.tracking import run_name, start_wandb

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
    """One Hydra job: where it writes and how it ended."""

    cfg: DictConfig
    run_dir: Path
    overrides: list[str]
    multirun: bool
    hydra_cfg: DictConfig
    status: str = "failed"  # "completed" once execute returns
    error: str | None = None
    result: R | None = None
    wandb_run: Any = field(default=None, repr=False)


def describe(error: BaseException) -> str:
    """A user error's own message; anything else as `Type: message`."""
    if isinstance(error, MnistlabError):
        return str(error)
    return f"{type(error).__name__}: {error}".rstrip(": ")


def sweep_group(hydra_cfg: DictConfig) -> str | None:
    """The jobs of one sweep share a W&B group: the sweep's name and start time."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    name = hydra_cfg.runtime.choices.get("sweeps") or "multirun"
    return f"{name}-{Path(hydra_cfg.sweep.dir).name}"


def run_job(cfg: DictConfig, *, prepare: Callable[[Job], P], execute: Callable[[Job, P], R],
            finish: Callable[[Job], None], tracking: Tracking) -> Job[R]:
    """Run one job under the shared failure policy; returns it with its status and result."""
    hydra_cfg = HydraConfig.get()
    job: Job[R] = Job(cfg=cfg, run_dir=Path(hydra_cfg.runtime.output_dir),
                      overrides=list(hydra_cfg.overrides.task),
                      multirun=hydra_cfg.mode == RunMode.MULTIRUN, hydra_cfg=hydra_cfg)
    try:
        try:
            prepared = prepare(job)
        except MnistlabError:
            if not job.multirun:
                shutil.rmtree(job.run_dir, ignore_errors=True)
            raise
        if cfg.logger.name == "wandb":
            job.wandb_run = start_wandb(
                cfg, job.run_dir, name=run_name(job.overrides) or tracking.default_name,
                job_type=tracking.job_type, tags=tracking.tags,
                group=tracking.group or sweep_group(hydra_cfg))
        job.result = execute(job, prepared)
        job.status = "completed"
    except BaseException as e:
        job.error = describe(e)
        if isinstance(e, MnistlabError) and not job.multirun:
            fail(e)  # one line, not Hydra's "Error executing job" and a traceback
        if not job.multirun or isinstance(e, KeyboardInterrupt):
            raise
        if isinstance(e, MnistlabError):
            sys.stderr.write(f"error: job {hydra_cfg.job.num}: {job.error}\n")
        else:
            traceback.print_exc()
    finally:
        if job.run_dir.exists():
            finish(job)
        if job.wandb_run is not None:
            job.wandb_run.finish(exit_code=0 if job.status == "completed" else 1)
    return job
