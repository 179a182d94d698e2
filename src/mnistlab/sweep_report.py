"""Hydra callback that closes every multirun: the comparison report, and a non-zero exit if any
job failed (jobs record failures in their summary.json instead of stopping the sweep)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from mnistlab.report import write_report  # matplotlib only once the sweep is done

        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = [d for d in sweep_dir.iterdir() if (d / ".hydra").is_dir()]
        if not jobs:
            return
        report = write_report([sweep_dir], sweep_dir)
        failed = len(report.failed) + len(jobs) - len(report.rows)  # + jobs that left no summary
        print(f"report: {sweep_dir / 'report.md'}")
        if failed:
            sys.stderr.write(f"error: {failed} of {len(jobs)} jobs failed; see the report\n")
            raise SystemExit(1)
