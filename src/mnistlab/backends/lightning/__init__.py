"""The PyTorch Lightning backend (`backend=lightning`): a LightningModule (`module`), its Trainer
(`trainer`), the torch builders (`components`: model, augment, optim, schedule) and the bench's
bare torch loop (`bare`). Importing this package imports neither torch nor Lightning."""

from __future__ import annotations

import os

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.config.schema import BackendConfig
from mnistlab.errors import ConfigError
from mnistlab.training.backend import Backend


def check(cfg: DictConfig) -> None:
    """Lightning starts the processes of a multi-device run itself, by running the command again;
    in a local multirun that would start the whole sweep again in each process."""
    t = cfg.trainer
    if t.devices == "auto":
        return
    world = t.devices * t.num_nodes
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if (world > 1 and HydraConfig.initialized()
            and HydraConfig.get().mode == RunMode.MULTIRUN and slurm_tasks != world):
        raise ConfigError(
            f"trainer.devices={t.devices} in a local multirun is not supported: Lightning would "
            "start the whole sweep again in each process; run it as a single run, or as Slurm "
            f"tasks (hydra/launcher=slurm hydra.launcher.tasks_per_node={t.devices})")


BACKEND = Backend(name="lightning", schema=BackendConfig, package=__name__,
                  packages=("torch", "pytorch-lightning"), checkpoint_suffix=".ckpt", checks=check)
