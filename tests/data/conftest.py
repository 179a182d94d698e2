"""The data tests' configs, composed as `train.py` composes them, and the arrays they serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mnistlab.data.catalog import ROLES
from mnistlab.run.configs import compose_config
from tests.conftest import FILES

NAMES = [FILES[role] for role in ROLES]
LABELS = np.arange(20, dtype=np.uint8) % 10
IMAGES = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)


def compose_data(overrides: list[str]) -> DictConfig:
    """The data group of `train.py OVERRIDES`, interpolations resolved (so it can be merged)."""
    cfg = compose_config(overrides)
    OmegaConf.resolve(cfg)
    return cfg.data


def data_cfg(folder: Path, **values) -> DictConfig:
    """The data group with data.dir=FOLDER, data.val_size=100, data.download=false and VALUES
    (data.KEY=VALUE) over it."""
    values = {"val_size": 100, "download": "false", **values}
    return compose_data([f"data.dir={folder}", *(f"data.{k}={v}" for k, v in values.items())])
