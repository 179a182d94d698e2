"""One training run: validate, load data, train with the chosen backend, write the outputs."""

from __future__ import annotations

import math
import shutil
import sys
import time
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.backends import RunContext, get_fit
from mnistlab.cli import fail
from mnistlab.data import load_splits
from mnistlab.errors import MnistlabError
from mnistlab.outputs import EpochRecorder, FitResult, build_summary, write_json_atomically
from mnistlab.tracking import run_name, run_tags, start_wandb
from mnistlab.validate import validate


def sweep_group(hydra_cfg: DictConfig) -> str | None:
    """The jobs of one sweep share a W&B group: the sweep's name and start time."""
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    name = hydra_cfg.runtime.choices.get("sweeps") or "multirun"
    return f"{name}-{Path(hydra_cfg.sweep.dir).name}"


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


def train(cfg: DictConfig) -> float:
    """Hydra task: returns the final validation accuracy (NaN if the run failed) for sweepers.

    In a single run, bad input (config values, data files) removes the run directory and raises,
    so the user sees one line and no leftovers. In a multirun, any failure is recorded in the
    job's summary.json and the sweep goes on; the sweep callback reports it at the end.
    """
    started = time.perf_counter()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = list(hydra_cfg.overrides.task)
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    rows: list[dict[str, float]] = []
    result: FitResult | None = None
    status, error, n_train = "failed", None, 0
    wandb_run = None
    try:
        try:
            validate(cfg)
            data = load_splits(cfg.data).limited(*sample_limits(cfg))
        except MnistlabError:
            if not multirun:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        n_train = len(data.x_train)
        if cfg.logger.name == "wandb":
            wandb_run = start_wandb(cfg, run_dir, name=run_name(overrides),
                                    job_type=cfg.backend.name, tags=run_tags(cfg),
                                    group=sweep_group(hydra_cfg))
        recorder = EpochRecorder(run_dir, wandb_run)
        rows = recorder.rows
        result = get_fit(cfg.backend.name)(cfg, data, RunContext(run_dir, recorder, wandb_run))
        status = "completed"
        if wandb_run is not None:
            wandb_run.summary.update({"test/loss": result.test_loss, "test/acc": result.test_acc})
    except BaseException as e:
        error = str(e) if isinstance(e, MnistlabError) else f"{type(e).__name__}: {e}".rstrip(": ")
        if isinstance(e, MnistlabError) and not multirun:
            fail(e)  # one line, not Hydra's "Error executing job" and a traceback
        if not multirun or isinstance(e, KeyboardInterrupt):
            raise
        if isinstance(e, MnistlabError):
            sys.stderr.write(f"error: job {hydra_cfg.job.num}: {error}\n")
        else:
            traceback.print_exc()
    finally:
        if run_dir.exists():
            summary = build_summary(
                status=status, error=error, cfg=cfg, rows=rows, result=result, n_train=n_train,
                wall_seconds=time.perf_counter() - started, overrides=overrides,
            )
            write_json_atomically(run_dir / "summary.json", summary)
        if wandb_run is not None:
            wandb_run.finish(exit_code=0 if status == "completed" else 1)
    return rows[-1]["val_acc"] if rows and status == "completed" else math.nan
