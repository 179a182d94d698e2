"""Value checks that Hydra's type system cannot express, run before any data is read.

Each failure is one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from difflib import get_close_matches
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mnistlab.config import flatten, group_options
from mnistlab.config.cpu import check_precision
from mnistlab.config.memory import check_memory
from mnistlab.config.schema import SCHEMAS
from mnistlab.config.shapes import check_model_fits
from mnistlab.data.catalog import DatasetSpec, known_spec
from mnistlab.data.formats import FORMATS
from mnistlab.errors import ConfigError

# groups whose `name` picks a builder or a code path: it must be one of the group's options
NAMED_GROUPS = ("model", "optimizer", "scheduler", "aug", "regularization", "backend", "logger")

# (key, test, what is allowed); a key missing from the composed config (another option) is skipped
Rule = tuple[str, Callable[[Any], bool], str]


def field_rules(schema: type, prefix: str = "") -> list[Rule]:
    """The range rules written on a schema's fields (`schema.ranged`), as `<prefix><field>`."""
    return [(f"{prefix}{f.name}", f.metadata["check"], f.metadata["allowed"])
            for f in fields(schema) if "check" in f.metadata]


def _one_of(choices: tuple[str, ...]) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v in choices), f"one of {', '.join(choices)}"


def _schema_rules() -> list[Rule]:
    """Every option's field rules, each key once (options that share a key share its rule)."""
    rules: dict[str, Rule] = {}
    for group, options in SCHEMAS.items():
        for schema in options.values():
            for rule in field_rules(schema, f"{group}."):
                rules.setdefault(rule[0], rule)
    return list(rules.values())


RULES: list[Rule] = [
    ("data.format", *_one_of(FORMATS.names())),
    *((f"{group}.name", *_one_of(group_options(group))) for group in NAMED_GROUPS),
    *_schema_rules(),
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


FREE_ROOTS = ("hydra",)  # Hydra's own settings: launcher options are added with + by design


def _schema_fields(node: Any) -> set[str] | None:
    """The fields a config node's schema declares; None for a node without one (a free dict)."""
    kind = OmegaConf.get_type(node) if isinstance(node, DictConfig) else None
    return {f.name for f in fields(kind)} if kind is not None and is_dataclass(kind) else None


def check_added_keys(cfg: DictConfig) -> None:
    """`+key=value` adds a key, and a misspelt one (`+trainer.max_epoch=5`) would otherwise train
    with the default in silence: a key that no schema declares is refused, naming the nearest
    known key. Config groups (`+experiment=fast`) and Hydra's own keys stay free."""
    if not HydraConfig.initialized():
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    known = list(flatten(OmegaConf.to_container(cfg, resolve=False)))
    overrides = OverridesParser.create().parse_overrides(list(HydraConfig.get().overrides.task))
    for override in overrides:
        key = override.key_or_group
        adds = override.is_add() or override.is_force_add()
        if not adds or key.split(".")[0] in FREE_ROOTS or group_options(key):
            continue
        parent, _, leaf = key.rpartition(".")
        declared = _schema_fields(OmegaConf.select(cfg, parent) if parent else cfg)
        if declared is None or leaf in declared:
            continue
        close = get_close_matches(key, [k for k in known if k != key], n=1, cutoff=0.8)
        hint = (f"did you mean {close[0]}?" if close
                else "check its spelling (--cfg job lists every key)")
        raise ConfigError(f"{override.input_line} adds the key {key}, which no schema knows; "
                          f"{hint}")


def check_processes(cfg: DictConfig) -> None:
    """Several devices: the global batch splits evenly between them (each backend checks whether
    it can start them here: `Backend.check`)."""
    t = cfg.trainer
    if t.devices == "auto":
        return
    world = t.devices * t.num_nodes
    if cfg.data.batch_size % world:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size} is not allowed with {world} "
                          f"devices; expected a multiple of {world} (each takes an equal part)")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first value out of range; the cross-key checks come last."""
    check_rules(cfg, RULES)
    check_choices(cfg)
    check_added_keys(cfg)
    check_processes(cfg)
    check_precision(cfg)
    spec = known_spec(cfg.data)
    if spec is not None:  # else checked once the data is read (load_splits), before training
        check_data(cfg, spec)
    warmup = OmegaConf.select(cfg, "scheduler.warmup_epochs", default=0)
    if warmup >= cfg.trainer.max_epochs:
        raise ConfigError(f"scheduler.warmup_epochs={warmup} is not allowed; expected "
                          f"warmup_epochs < trainer.max_epochs={cfg.trainer.max_epochs}")
    min_lr = OmegaConf.select(cfg, "scheduler.min_lr", default=0.0)
    if min_lr > cfg.optimizer.lr:
        raise ConfigError(f"scheduler.min_lr={min_lr} is not allowed; expected "
                          f"min_lr <= optimizer.lr={cfg.optimizer.lr}")


def check_data(cfg: DictConfig, spec: DatasetSpec) -> None:
    """The checks that need the dataset's size and image shape: the split sizes, the batch,
    whether the model takes the images, and memory."""
    data = cfg.data
    total = spec.train_size
    val = math.ceil(data.val_size * total) if data.val_size < 1 else int(data.val_size)
    if val >= total:
        raise ConfigError(f"data.val_size={data.val_size:g} is not allowed; expected "
                          f"val_size < {total}, the training images of {spec.title}")
    left = total - val
    if data.train_subset is not None and data.train_subset > left:
        raise ConfigError(
            f"data.train_subset={data.train_subset} is more than the {left} training images "
            f"left after data.val_size={data.val_size:g}"
        )
    samples = left if data.train_subset is None else data.train_subset
    if data.batch_size > samples:
        raise ConfigError(f"data.batch_size={data.batch_size} is not allowed; expected "
                          f"batch_size <= {samples}, the training images (after "
                          "data.val_size and data.train_subset)")
    check_model_fits(cfg.model, spec.input_shape, cfg.data.name)
    check_memory(cfg, spec)
