"""Value checks that Hydra's type system cannot express, run before any data is read.

Each failure is one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mnistlab.config import group_options
from mnistlab.data.catalog import DATASETS
from mnistlab.errors import ConfigError

KERAS_BACKENDS = ("tensorflow", "torch", "jax")
WANDB_MODES = ("offline", "online", "disabled")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
# groups whose `name` picks a builder or a code path: it must be one of the group's options
NAMED_GROUPS = ("model", "optimizer", "scheduler", "aug", "regularization", "backend", "logger")

# (key, test, what is allowed); a key missing from the composed config (another option) is skipped
Rule = tuple[str, Callable[[Any], bool], str]


def _one_of(choices: tuple[str, ...]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


RULES: list[Rule] = [
    ("data.name", *_one_of(tuple(sorted(DATASETS)))),
    *((f"{group}.name", *_one_of(group_options(group))) for group in NAMED_GROUPS),
    ("data.val_size", lambda v: v >= 10, "val_size >= 10"),
    ("data.split_seed", lambda v: 0 <= v < 2**32, "0 <= split_seed < 2**32"),
    ("data.batch_size", lambda v: v >= 1, "batch_size >= 1"),
    ("data.eval_batch_size", lambda v: v >= 1, "eval_batch_size >= 1"),
    ("data.train_subset", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("model.channels", lambda v: len(v) >= 1 and all(c >= 1 for c in v), "a list of ints >= 1"),
    ("model.kernel_size", lambda v: v >= 1, "kernel_size >= 1"),
    ("model.dense_units", lambda v: v >= 1, "dense_units >= 1"),
    ("model.dropout", lambda v: 0 <= v < 1, "0 <= dropout < 1"),
    ("optimizer.lr", lambda v: v > 0, "lr > 0"),
    ("optimizer.beta1", lambda v: 0 <= v < 1, "0 <= beta1 < 1"),
    ("optimizer.beta2", lambda v: 0 <= v < 1, "0 <= beta2 < 1"),
    ("optimizer.eps", lambda v: v > 0, "eps > 0"),
    ("optimizer.rho", lambda v: 0 <= v < 1, "0 <= rho < 1"),
    ("optimizer.momentum", lambda v: 0 <= v < 1, "0 <= momentum < 1"),
    ("optimizer.weight_decay", lambda v: v >= 0, "weight_decay >= 0"),
    ("scheduler.min_lr", lambda v: v >= 0, "min_lr >= 0"),
    ("scheduler.warmup_epochs", lambda v: v >= 0, "warmup_epochs >= 0"),
    ("scheduler.max_lr", lambda v: v > 0, "max_lr > 0"),
    ("scheduler.pct_start", lambda v: 0 < v < 1, "0 < pct_start < 1"),
    ("scheduler.div_factor", lambda v: v > 0, "div_factor > 0"),
    ("scheduler.final_div_factor", lambda v: v > 0, "final_div_factor > 0"),
    ("aug.horizontal_p", lambda v: 0 <= v <= 1, "a probability, 0 <= p <= 1"),
    ("aug.vertical_p", lambda v: 0 <= v <= 1, "a probability, 0 <= p <= 1"),
    ("aug.rotation_degrees", lambda v: 0 <= v <= 180, "0 <= degrees <= 180"),
    ("aug.shift_x", lambda v: 0 <= v < 1, "a fraction of the width, 0 <= shift < 1"),
    ("aug.shift_y", lambda v: 0 <= v < 1, "a fraction of the height, 0 <= shift < 1"),
    ("regularization.weight", lambda v: v >= 0, "weight >= 0"),
    ("backend.keras_backend", *_one_of(KERAS_BACKENDS)),
    ("trainer.max_epochs", lambda v: v >= 1, "max_epochs >= 1"),
    ("trainer.seed", lambda v: 0 <= v < 2**32, "0 <= seed < 2**32"),
    ("trainer.accelerator", *_one_of(ACCELERATORS)),
    ("trainer.devices", lambda v: v == "auto" or (isinstance(v, int) and v >= 1),
     "auto or an integer >= 1"),
    ("trainer.num_nodes", lambda v: v >= 1, "num_nodes >= 1"),
    ("trainer.threads", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("trainer.stop_at_val_acc", lambda v: v is None or 0 < v <= 1, "null or 0 < accuracy <= 1"),
    ("trainer.precision", lambda v: str(v) in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    ("trainer.limit_train_batches", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("trainer.limit_val_batches", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("trainer.limit_test_batches", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("logger.mode", *_one_of(WANDB_MODES)),
]


_ABSENT = object()


def check_rules(cfg: DictConfig, rules: list[Rule]) -> None:
    """Raise ConfigError on the first value a rule rejects; keys absent from cfg are skipped."""
    for key, ok, allowed in rules:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not ok(value):
            raise ConfigError(f"{key}={value} is not allowed; expected {allowed}")


def check_choices(cfg: DictConfig) -> None:
    """`optimizer.name=sgd` on top of optimizer=adam would build SGD from Adam's keys: refuse a
    name that contradicts the option Hydra composed (known only inside a Hydra app)."""
    if not HydraConfig.initialized():
        return
    choices = HydraConfig.get().runtime.choices
    for group in ("data", *NAMED_GROUPS):
        chosen, name = choices.get(group), OmegaConf.select(cfg, f"{group}.name")
        if chosen is not None and name is not None and chosen != name:
            raise ConfigError(f"{group}.name={name} contradicts the option {group}={chosen}; "
                              f"choose the option instead: {group}={name}")


def check_conv_blocks(model: DictConfig, image_shape: tuple[int, int]) -> None:
    """Each conv block (valid conv, then 2x2 pooling) must leave at least one pixel."""
    if "channels" not in model:  # a model without conv blocks
        return
    height, width = image_shape
    for _ in model.channels:
        height, width = ((side - model.kernel_size + 1) // 2 for side in (height, width))
    if min(height, width) < 1:
        h, w = image_shape
        raise ConfigError(
            f"model.channels={list(model.channels)} with kernel_size={model.kernel_size} "
            f"shrinks a {h}x{w} image to nothing; use fewer conv blocks or a smaller kernel"
        )


def check_processes(cfg: DictConfig) -> None:
    """Several devices: the global batch splits evenly, and each backend can start them here."""
    t = cfg.trainer
    if t.num_nodes > 1 and cfg.backend.name == "keras":
        raise ConfigError(f"trainer.num_nodes={t.num_nodes} is not supported by backend=keras "
                          "(MirroredStrategy uses one machine); use backend=lightning")
    if t.devices == "auto":
        return
    world = t.devices * t.num_nodes
    if cfg.data.batch_size % world:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} is not allowed with {world} "
                          f"devices; expected a multiple of {world} (each takes an equal part)")
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if (world > 1 and cfg.backend.name == "lightning" and HydraConfig.initialized()
            and HydraConfig.get().mode == RunMode.MULTIRUN and slurm_tasks != world):
        raise ConfigError(
            f"trainer.devices={t.devices} in a local multirun is not supported: Lightning would "
            "start the whole sweep again in each process; run it as a single run, or as Slurm "
            f"tasks (hydra/launcher=slurm hydra.launcher.tasks_per_node={t.devices})")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value out of range; the cross-key checks come last."""
    check_rules(cfg, RULES)
    check_choices(cfg)
    spec = DATASETS[cfg.data.name]
    if cfg.data.val_size >= spec.train_size:
        raise ConfigError(f"data.val_size={cfg.data.val_size} is not allowed; expected "
                          f"val_size < {spec.train_size}, the training images of {spec.title}")
    left = spec.train_size - cfg.data.val_size
    if cfg.data.train_subset is not None and cfg.data.train_subset > left:
        raise ConfigError(
            f"data.train_subset={cfg.data.train_subset} is more than the {left} training images "
            f"left after data.val_size={cfg.data.val_size}"
        )
    check_conv_blocks(cfg.model, spec.image_shape)
    check_processes(cfg)
    warmup = OmegaConf.select(cfg, "scheduler.warmup_epochs", default=0)
    if warmup >= cfg.trainer.max_epochs:
        raise ConfigError(f"scheduler.warmup_epochs={warmup} is not allowed; expected "
                          f"warmup_epochs < trainer.max_epochs={cfg.trainer.max_epochs}")
    min_lr = OmegaConf.select(cfg, "scheduler.min_lr", default=0.0)
    if min_lr > cfg.optimizer.lr:
        raise ConfigError(f"scheduler.min_lr={min_lr} is not allowed; expected "
                          f"min_lr <= optimizer.lr={cfg.optimizer.lr}")
