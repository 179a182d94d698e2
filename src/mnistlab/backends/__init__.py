"""Training backends. Each exposes `fit(cfg, data, ctx) -> FitResult`; imported only when used,
so that TensorFlow loads only for backend=keras."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistlab.data import Splits
from mnistlab.outputs import EpochRecorder, FitResult

MODULES = {"lightning": "mnistlab.backends.lightning_trainer",
           "keras": "mnistlab.backends.keras_trainer"}


@dataclass
class RunContext:
    """Where a backend writes (checkpoints/ under run_dir) and whom it reports epochs to."""

    run_dir: Path
    recorder: EpochRecorder
    wandb_run: Any = None


Fit = Callable[[DictConfig, Splits, RunContext], FitResult]


def get_fit(name: str) -> Fit:
    return import_module(MODULES[name]).fit
