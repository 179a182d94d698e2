"""The W&B run of a training run: started and finished here, the same way for both backends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def run_tags(cfg: DictConfig) -> list[str]:
    regularization = cfg.regularization.name if cfg.regularization.weight > 0 else "none"
    return [
        f"backend:{cfg.backend.name}",
        f"optimizer:{cfg.optimizer.name}",
        f"aug:{cfg.aug.name}",
        f"regularization:{regularization}",
    ]


def run_name(overrides: list[str]) -> str | None:
    """Name a run after what was overridden, so sweep jobs are told apart in the W&B UI."""
    skip = ("logger.", "hydra", "sweeps=", "paths.", "optuna.")
    return " ".join(o for o in overrides if not o.startswith(skip)) or None


def stored_wandb_id(run_dir: Path) -> str | None:
    """The id of the W&B run an earlier start of this run made (its files are named after it)."""
    runs = sorted((run_dir / "wandb").glob("*run-*-*"), key=lambda p: p.name)
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


def start_wandb(cfg: DictConfig, run_dir: Path, *, name: str | None, job_type: str,
                tags: list[str], group: str | None = None, run_id: str | None = None) -> Any:
    """Start the W&B run (offline by default: no account, prompt or network needed); the
    logger group's keys, when set, win over the defaults given here. With `run_id` the earlier
    start's W&B run goes on: history is stepped by epoch, so both pieces sync into one run."""
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    log = cfg.logger
    return wandb.init(
        project=log.project,
        entity=log.entity,
        mode=log.mode,
        dir=str(run_dir),
        group=log.group or group,
        job_type=log.job_type or job_type,
        name=log.run_name or name,
        tags=[*tags, *log.tags],
        config=OmegaConf.to_container(cfg, resolve=True),
        id=run_id,
        resume="allow" if run_id else None,
        settings=wandb.Settings(console="off", silent=True),
    )


def logged_epochs(run_dir: Path, wandb_run: Any) -> set[int]:
    """The epochs the run's earlier W&B pieces hold in their files, as W&B's own reader
    (`wandb leet inspect`) finds them; a piece it cannot read (a kill cut it short) holds none.

    A SIGKILL can end W&B's writer before it flushed: its file then lacks epochs that
    metrics.csv has, which the resumed start logs again. (The SDK has no public reader of these
    files; the CLI's reader is the one W&B keeps working.)"""
    current = Path(wandb_run.dir).parent.resolve()
    cli = Path(sys.executable).with_name("wandb")
    cli = cli if cli.exists() else shutil.which("wandb")
    epochs: set[int] = set()
    for piece in sorted((run_dir / "wandb").glob("*run-*")):
        if cli is None or not piece.is_dir() or piece.resolve() == current:
            continue
        try:
            out = subprocess.run([str(cli), "leet", "inspect", "--json", str(piece)],
                                 capture_output=True, text=True, timeout=120, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            epoch = record.get("history", {}).get("item", {}).get("epoch")
            if record.get("type") == "history" and epoch is not None:
                epochs.add(int(epoch))
    return epochs
