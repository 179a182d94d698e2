"""Structured config schemas: Hydra checks every key and type against these at compose time.

Each group option's YAML (conf/<group>/<option>.yaml) starts from one of these schemas, so a
misspelt key or a string where a number belongs fails before anything runs. Value ranges are
checked afterwards by :mod:`mnistlab.validate`, which Hydra's type system cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


@dataclass
class PathsConfig:
    root: str = MISSING
    data: str = MISSING
    output: str = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    dir: str = MISSING
    mirrors: list[str] = field(default_factory=list)
    download: bool = True
    val_size: int = 10_000
    split_seed: int = 42
    train_subset: int | None = None
    batch_size: int = 50
    eval_batch_size: int = 1000


@dataclass
class ModelConfig:
    name: str = MISSING
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    dense_units: int = 128
    dropout: float = 0.2


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = 1e-4


@dataclass
class AdamConfig(OptimizerConfig):
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7


@dataclass
class AdamWConfig(AdamConfig):
    weight_decay: float = 0.01


@dataclass
class RMSpropConfig(OptimizerConfig):
    rho: float = 0.9
    eps: float = 1e-7
    momentum: float = 0.0


@dataclass
class SGDConfig(OptimizerConfig):
    momentum: float = 0.0
    nesterov: bool = False


@dataclass
class AugConfig:
    name: str = MISSING


@dataclass
class FlipConfig(AugConfig):
    horizontal_p: float = 0.5
    vertical_p: float = 0.5


@dataclass
class ShiftRotateConfig(AugConfig):
    rotation_degrees: float = 20.0
    shift_x: float = 0.1
    shift_y: float = 0.1


@dataclass
class SchedulerConfig:
    name: str = MISSING


@dataclass
class CosineConfig(SchedulerConfig):
    min_lr: float = 0.0
    warmup_epochs: int = 0


@dataclass
class OneCycleConfig(SchedulerConfig):
    max_lr: float = 1e-3
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4


@dataclass
class RegularizationConfig:
    name: str = MISSING
    weight: float = 0.0


@dataclass
class BackendConfig:
    name: str = MISSING


@dataclass
class KerasBackendConfig(BackendConfig):
    keras_backend: str = "tensorflow"


@dataclass
class TrainerConfig:
    max_epochs: int = 25
    seed: int = 42
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    threads: int | None = None
    stop_at_val_acc: float | None = None
    precision: str = "32-true"
    deterministic: bool = True
    progress_bar: bool = True
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    limit_test_batches: int | None = None


@dataclass
class LoggerConfig:
    name: str = MISSING


@dataclass
class WandbConfig(LoggerConfig):
    project: str = "mnistlab"
    entity: str | None = None
    mode: str = "offline"
    group: str | None = None
    run_name: str | None = None
    job_type: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    aug: AugConfig = MISSING
    regularization: RegularizationConfig = MISSING
    backend: BackendConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    experiment: str | None = None


SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"data": DataConfig},
    "model": {"cnn": ModelConfig},
    "optimizer": {"adam": AdamConfig, "adamw": AdamWConfig, "rmsprop": RMSpropConfig,
                  "sgd": SGDConfig},
    "scheduler": {"none": SchedulerConfig, "cosine": CosineConfig, "onecycle": OneCycleConfig},
    "aug": {"none": AugConfig, "flip": FlipConfig, "shift_rotate": ShiftRotateConfig},
    "regularization": {"regularization": RegularizationConfig},
    "backend": {"lightning": BackendConfig, "keras": KerasBackendConfig},
    "trainer": {"trainer": TrainerConfig},
    "logger": {"wandb": WandbConfig, "csv": LoggerConfig, "none": LoggerConfig},
}


def group_options(group: str) -> tuple[str, ...]:
    """The options of a config group as Hydra offers them: the YAML files in conf/<group>/."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


def register_configs() -> None:
    """Put the schemas where the YAML files' defaults lists find them (`/<group>_<name>_schema`).

    They are stored at the root, not in a group, so that `--help` does not list them as options.
    """
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(name=f"{group}_{name}_schema", node=node)
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


register_configs()
