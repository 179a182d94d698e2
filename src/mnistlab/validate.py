"""Value checks that Hydra's type system cannot express, run before any data is read.

Each failure is one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import ConfigError

DATASETS = ("mnist", "fashion_mnist")
MODELS = ("cnn",)
BACKENDS = ("lightning", "keras")
KERAS_BACKENDS = ("tensorflow", "torch", "jax")
LOGGERS = ("wandb", "csv", "none")
WANDB_MODES = ("offline", "online", "disabled")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
TRAIN_IMAGES = 60_000
IMAGE_SIZE = 28

# (key, test, what is allowed); a key missing from the composed config (another option) is skipped
Rule = tuple[str, Callable[[Any], bool], str]

RULES: list[Rule] = [
    ("data.name", lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    ("data.val_size", lambda v: 10 <= v < TRAIN_IMAGES, f"10 <= val_size < {TRAIN_IMAGES}"),
    ("data.split_seed", lambda v: 0 <= v < 2**32, "0 <= split_seed < 2**32"),
    ("data.batch_size", lambda v: v >= 1, "batch_size >= 1"),
    ("data.eval_batch_size", lambda v: v >= 1, "eval_batch_size >= 1"),
    ("data.train_subset", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("model.name", lambda v: v in MODELS, f"one of {', '.join(MODELS)}"),
    ("model.channels", lambda v: len(v) >= 1 and all(c >= 1 for c in v), "a list of ints >= 1"),
    ("model.kernel_size", lambda v: v >= 1, "kernel_size >= 1"),
    ("model.dense_units", lambda v: v >= 1, "dense_units >= 1"),
    ("model.dropout", lambda v: 0 <= v < 1, "0 <= dropout < 1"),
    ("model.num_classes", lambda v: v == 10, "10 (both datasets have 10 classes)"),
    ("optimizer.lr", lambda v: v > 0, "lr > 0"),
    ("optimizer.beta1", lambda v: 0 <= v < 1, "0 <= beta1 < 1"),
    ("optimizer.beta2", lambda v: 0 <= v < 1, "0 <= beta2 < 1"),
    ("optimizer.eps", lambda v: v > 0, "eps > 0"),
    ("optimizer.rho", lambda v: 0 <= v < 1, "0 <= rho < 1"),
    ("optimizer.momentum", lambda v: 0 <= v < 1, "0 <= momentum < 1"),
    ("aug.horizontal_p", lambda v: 0 <= v <= 1, "a probability, 0 <= p <= 1"),
    ("aug.vertical_p", lambda v: 0 <= v <= 1, "a probability, 0 <= p <= 1"),
    ("aug.rotation_degrees", lambda v: 0 <= v <= 180, "0 <= degrees <= 180"),
    ("aug.shift_x", lambda v: 0 <= v < 1, "a fraction of the width, 0 <= shift < 1"),
    ("aug.shift_y", lambda v: 0 <= v < 1, "a fraction of the height, 0 <= shift < 1"),
    ("regularization.weight", lambda v: v >= 0, "weight >= 0"),
    ("backend.name", lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)}"),
    ("backend.keras_backend", lambda v: v in KERAS_BACKENDS, f"one of {', '.join(KERAS_BACKENDS)}"),
    ("trainer.max_epochs", lambda v: v >= 1, "max_epochs >= 1"),
    ("trainer.accelerator", lambda v: v in ACCELERATORS, f"one of {', '.join(ACCELERATORS)}"),
    ("trainer.precision", lambda v: str(v) in PRECISIONS, f"one of {', '.join(PRECISIONS)}"),
    ("trainer.limit_train_batches", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("trainer.limit_val_batches", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("trainer.limit_test_batches", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("logger.name", lambda v: v in LOGGERS, f"one of {', '.join(LOGGERS)}"),
    ("logger.mode", lambda v: v in WANDB_MODES, f"one of {', '.join(WANDB_MODES)}"),
]


_ABSENT = object()


def check_rules(cfg: DictConfig, rules: list[Rule]) -> None:
    """Raise ConfigError on the first value a rule rejects; keys absent from cfg are skipped."""
    for key, ok, allowed in rules:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not ok(value):
            raise ConfigError(f"{key}={value} is not allowed; expected {allowed}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value out of range; the cross-key checks come last."""
    check_rules(cfg, RULES)
    left = TRAIN_IMAGES - cfg.data.val_size
    if cfg.data.train_subset is not None and cfg.data.train_subset > left:
        raise ConfigError(
            f"data.train_subset={cfg.data.train_subset} is more than the {left} training images "
            f"left after data.val_size={cfg.data.val_size}"
        )
    size = IMAGE_SIZE
    for _ in cfg.model.channels:
        size = (size - cfg.model.kernel_size + 1) // 2
    if size < 1:
        raise ConfigError(
            f"model.channels={list(cfg.model.channels)} with kernel_size={cfg.model.kernel_size} "
            f"shrinks a {IMAGE_SIZE}x{IMAGE_SIZE} image to nothing; use fewer conv blocks or a "
            "smaller kernel"
        )
