"""Hydra callback that closes every multirun: the comparison report over all of the sweep's
jobs (also those of earlier, interrupted starts of the same sweep), how many were skipped,
resumed and started, and a non-zero exit if any job failed (jobs record failures in their
summary.json instead of stopping the sweep)."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mnistlab.run.trackers import active


def job_counts(jobs: list[Path], since: float) -> dict[str, int]:
    """skipped: its summary predates this start (completed earlier); resumed: this start went
    on from an earlier one; started: the rest. Jobs without a summary are not counted."""
    counts = {"skipped": 0, "resumed": 0, "started": 0}
    for job in jobs:
        path = job / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if path.stat().st_mtime < since:
            counts["skipped"] += 1
        elif summary.get("resumed_from_epoch") is not None:
            counts["resumed"] += 1
        else:
            counts["started"] += 1
    return counts


def log_report_run(config: DictConfig, sweep_dir: Path) -> None:
    """The report as one W&B run in the sweep's group (job_type `report`): runs.csv and
    groups.csv as Tables, every figure as an image; a re-run of the sweep continues it."""
    import wandb

    from mnistlab.run.lifecycle import sweep_group
    from mnistlab.run.tracking import start_wandb, stored_wandb_id

    task_cfg = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    run = start_wandb(task_cfg, sweep_dir, name="report", job_type="report", tags=["report"],
                      group=sweep_group(config.hydra), run_id=stored_wandb_id(sweep_dir))
    tables = {}
    for name in ("runs", "groups", "effects"):
        path = sweep_dir / f"{name}.csv"
        if path.is_file():
            with path.open(newline="") as f:
                rows = list(csv.reader(f))
            tables[f"report/{name}"] = wandb.Table(columns=rows[0], data=rows[1:])
    figures = {f"report/{p.stem}": wandb.Image(str(p)) for p in sorted(sweep_dir.glob("*.png"))}
    run.log({**tables, **figures})
    run.finish()


class SweepReport(Callback):
    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.report.write import write_report  # its statistics and figures: at the end

        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = [d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()]
        if not jobs:
            return
        counts = job_counts(jobs, self.started)
        print("jobs: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
        report = write_report([sweep_dir], sweep_dir, job_counts=counts)
        failed = len(report.failed)  # every job directory is a row, also one without a summary
        print(f"report: {sweep_dir / 'report.md'}")
        if config.logger.name == "wandb":
            log_report_run(config, sweep_dir)
        if "mlflow" in active(config.logger):
            from mnistlab.run.lifecycle import sweep_group
            from mnistlab.run.trackers import log_report_to_mlflow

            log_report_to_mlflow(config, sweep_dir,
                                 config.logger.get("group") or sweep_group(config.hydra))
        if failed:
            sys.stderr.write(f"error: {failed} of {len(report.rows)} jobs failed; see the report\n")
            raise SystemExit(1)
