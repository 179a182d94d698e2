"""`resume=latest`: the most recent unfinished training run or sweep under the output folder,
for `mnistlab.run.rundir.expand_resume`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from mnistlab.config import REPO_ROOT
from mnistlab.errors import ConfigError

LATEST = "latest"  # resume=latest: the most recent unfinished run or sweep
# statuses of a run that resume=latest leaves alone: done, or stopped by a search's pruner on
# purpose (an Optuna search counts pruned trials as finished)
FINISHED = frozenset({"completed", "pruned"})


def output_folder(overrides: list[str]) -> Path:
    """`paths.output` as these overrides set it (the last one wins, as in Hydra), else
    `paths.root`'s outputs/, else the repo's (conf/paths/default.yaml)."""
    given = dict(o.lstrip("+").split("=", 1) for o in overrides if "=" in o)
    if "paths.output" in given:
        return Path(given["paths.output"]).expanduser().resolve()
    return Path(given.get("paths.root", REPO_ROOT)).expanduser().resolve() / "outputs"


def latest_unfinished(output: Path, *, sweeps_only: bool = False) -> Path:
    """The training run or sweep under `output` that was worked on last and is not finished: a
    run whose summary.json status is not FINISHED (running, interrupted, failed) or that has
    .hydra/ and no summary.json; a sweep (multirun.yaml) with such a job, or with no job yet.
    A sweep's jobs are part of it, never candidates of their own.

    "Last" is the directory's modification time: every start and epoch updates it (the atomic
    writes of summary.json and metrics.csv rename into it, the .lock comes and goes, a sweep
    gains job directories), so it is the most recently trained one, also when an older run was
    resumed last; equal times go by name. ConfigError (one line) when there is none."""
    candidates = sorted(_candidates(output), key=lambda c: (_mtime(c[0]), c[0].name),
                        reverse=True)
    for directory, sweep in candidates:
        if sweeps_only and not sweep:
            continue
        why = _sweep_unfinished(directory) if sweep else _run_unfinished(directory)
        job = directory / "multirun.yaml" if sweep else directory / ".hydra" / "hydra.yaml"
        if why and _trains(job):
            sys.stderr.write(f"resume=latest: {directory} ({why})\n")
            return directory
    kind = "sweep" if sweeps_only else "run or sweep"
    raise ConfigError(f"resume=latest: no unfinished {kind} under {output}")


def _candidates(output: Path) -> Iterator[tuple[Path, bool]]:
    """Each run and sweep directory under `output` (any job's: `_trains` tells train.py's apart),
    with whether it is a sweep."""
    for root, subdirs, files in os.walk(output):
        here = Path(root)
        sweep = "multirun.yaml" in files
        if sweep or (here / ".hydra" / "overrides.yaml").is_file():
            subdirs.clear()
            yield here, sweep
        subdirs[:] = [d for d in subdirs if d not in ("wandb", "checkpoints", ".hydra")]


def _trains(hydra_yaml: Path) -> bool:
    """Whether a run's .hydra/hydra.yaml (a sweep's multirun.yaml) is train.py's (job name
    train), not the EDA's, eval.py's, ..., whose directories also hold .hydra/."""
    try:
        job = (yaml.safe_load(hydra_yaml.read_text()) or {}).get("hydra", {}).get("job", {})
    except (OSError, yaml.YAMLError, AttributeError):
        return True  # no readable record of the job: a run directory of train.py's layout
    return not isinstance(job, dict) or job.get("name", "train") == "train"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed while we looked
        return 0.0


def _status(run_dir: Path) -> str:
    """summary.json's status, or why there is none to read."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except FileNotFoundError:
        return "no summary.json"
    except (OSError, ValueError):
        return "unreadable summary.json"
    status = summary.get("status") if isinstance(summary, dict) else None
    return status if isinstance(status, str) else "no status in summary.json"


def _run_unfinished(run_dir: Path) -> str | None:
    """Why the run is unfinished (its status), or None when it is FINISHED."""
    status = _status(run_dir)
    return None if status in FINISHED else status


def _sweep_unfinished(sweep_dir: Path) -> str | None:
    """How many of the sweep's jobs are unfinished, or None when none is."""
    jobs = [d for d in sweep_dir.iterdir()
            if d.is_dir() and (d.name.isdigit() or (d / ".hydra").is_dir())]
    if not jobs:
        return "no job started"
    left = [j for j in jobs if _run_unfinished(j)]
    return f"{len(left)} of {len(jobs)} jobs unfinished" if left else None
