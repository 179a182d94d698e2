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
from mnistlab.registry import Registry


def _nothing() -> None:
    return None


@dataclass
class RunContext:
    """Where a backend writes (checkpoints/ under run_dir), whom it reports epochs to, whether
    it continues from its last checkpoint there (`resume`), and what it calls once that
    checkpoint is restored and training starts (`on_start`: the `running` summary)."""

    run_dir: Path
    recorder: EpochRecorder
    wandb_run: Any = None
    resume: bool = False
    on_start: Callable[[], None] = _nothing


Fit = Callable[[DictConfig, Splits, RunContext], FitResult]
BACKENDS: Registry[Callable[[], Fit]] = Registry("backend")


@BACKENDS.register("lightning")
def _lightning() -> Fit:
    return import_module("mnistlab.backends.lightning_trainer").fit


@BACKENDS.register("keras")
def _keras() -> Fit:
    return import_module("mnistlab.backends.keras_trainer").fit


def get_fit(name: str) -> Fit:
    return BACKENDS[name]()


def steps_per_epoch(cfg: DictConfig, data: Splits) -> int:
    """Optimizer steps in one epoch on either backend: the last, smaller batch is kept."""
    return -(-len(data.x_train) // cfg.data.batch_size)
