"""A finished training run as eval, predict and export find it: its directory, stored config,
summary, backend and checkpoint; a sweep directory stands for the runs in it.

Every way a run directory can fail to serve is one DataError naming the directory or file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mnistlab.backends import backend_names, get_backend
from mnistlab.data import Splits, load_splits
from mnistlab.errors import DataError
from mnistlab.run.configs import register_configs
from mnistlab.run.training import sample_limits
from mnistlab.training.backend import Backend

CHECKPOINTS = ("best", "last")  # eval.checkpoint names; any other value is a file's path


@dataclass(frozen=True)
class FinishedRun:
    dir: Path
    cfg: DictConfig  # the run's own, from .hydra/config.yaml
    summary: dict[str, Any]

    @property
    def backend(self) -> Backend:
        return get_backend(self.cfg.backend.name)

    @property
    def name(self) -> str:
        return self.dir.name

    def splits(self) -> Splits:
        """The run's own split, cut as its trainer cut it (data.train_subset, the debug
        trainer's limit_*_batches): its test images are the ones its test_acc counts."""
        return load_splits(self.cfg.data).limited(*sample_limits(self.cfg))

    def checkpoint(self, which: str) -> Path:
        """checkpoints/<which><suffix> for best or last, else `which` as a file; one line when it
        is missing or was written by the other backend."""
        suffix = self.backend.checkpoint_suffix
        path = (self.dir / "checkpoints" / f"{which}{suffix}" if which in CHECKPOINTS
                else Path(which).expanduser())
        other = {get_backend(b).checkpoint_suffix: b for b in backend_names()}
        if path.suffix != suffix and path.suffix in other:
            raise DataError(f"checkpoint {path} is a {other[path.suffix]} checkpoint, but run "
                            f"{self.dir} trained with backend={self.backend.name} "
                            f"(its checkpoints end in {suffix})")
        if not path.is_file():
            found = sorted(p.name for p in (self.dir / "checkpoints").glob("*.*"))
            raise DataError(f"no checkpoint {path}: run {self.dir} has "
                            f"{', '.join(found) if found else 'no checkpoints'}; "
                            f"eval.checkpoint is one of {', '.join(CHECKPOINTS)} or a file")
        return path


def open_run(directory: str | Path) -> FinishedRun:
    """The run in `directory`; DataError when it is not a training run's directory."""
    path = Path(directory).expanduser().resolve()
    config = path / ".hydra" / "config.yaml"
    if not config.is_file():
        raise DataError(f"run={directory}: not a training run's directory (no .hydra/config.yaml)")
    register_configs()  # the repo_root resolver the stored paths use
    cfg = OmegaConf.load(config)
    if "backend" not in cfg or "trainer" not in cfg:
        raise DataError(f"run={directory}: {config} is not a training run's config")
    summary_file = path / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    return FinishedRun(path, cfg, summary)


def expand_runs(given: str | list[str]) -> list[FinishedRun]:
    """Run directories as given; a sweep directory (no .hydra/config.yaml of its own) stands for
    the job directories in it, in job order."""
    paths = [given] if isinstance(given, str) else list(given)
    if not paths:
        raise DataError("run=: no run directory given")
    runs: list[FinishedRun] = []
    for given_path in paths:
        path = Path(str(given_path)).expanduser()
        if path.is_dir() and not (path / ".hydra" / "config.yaml").is_file():
            jobs = sorted((p for p in path.iterdir() if (p / ".hydra" / "config.yaml").is_file()),
                          key=lambda p: (len(p.name), p.name))
            if not jobs:
                raise DataError(f"run={given_path}: neither a run directory nor a sweep "
                                "directory with runs in it")
            runs += [open_run(p) for p in jobs]
        else:
            runs.append(open_run(path))
    return runs


def tracking_group(run: FinishedRun) -> str | None:
    """The W&B group the run was logged in (mnistlab.run.lifecycle.sweep_group's rule, or the
    logger.group it set); None for a run that was not tracked."""
    if run.cfg.logger.name != "wandb" or not (run.dir / "wandb").is_dir():
        return None
    if run.cfg.logger.get("group"):
        return str(run.cfg.logger.group)
    hydra_file = run.dir / ".hydra" / "hydra.yaml"
    hydra = OmegaConf.load(hydra_file).hydra if hydra_file.is_file() else None
    if hydra is None or not str(hydra.get("mode")).endswith("MULTIRUN"):
        return None
    name = hydra.runtime.choices.get("sweeps") or "multirun"
    return f"{name}-{run.dir.parent.name}"


def dark_background(images: np.ndarray) -> bool:
    """Whether a dataset's images are light on a dark background (MNIST's strokes): the mean of
    their outermost ring of pixels is below mid-grey. predict.py inverts a light-background
    input for such a run."""
    ring = np.concatenate([images[:, 0].ravel(), images[:, -1].ravel(),
                           images[:, :, 0].ravel(), images[:, :, -1].ravel()])
    return bool(ring.mean() < 127.5)
