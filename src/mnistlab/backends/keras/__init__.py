"""The Keras 3 backend (`backend=keras`, on TensorFlow by default): its trainer (`trainer`), the
Keras builders (`components`: model, augment, optim, schedule), the choice of Keras' own backend
before Keras is imported (`env`) and the bench's bare Keras loop (`bare`). Importing this package
imports neither Keras nor TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from mnistlab.config.schema import BackendConfig, one_of
from mnistlab.errors import ConfigError
from mnistlab.training.backend import Backend

KERAS_BACKENDS = ("tensorflow", "torch", "jax")


@dataclass
class KerasBackendConfig(BackendConfig):
    # KERAS_BACKEND, set before keras is first imported
    keras_backend: str = one_of("tensorflow", KERAS_BACKENDS)


def check(cfg: DictConfig) -> None:
    if cfg.trainer.num_nodes > 1:
        raise ConfigError(f"trainer.num_nodes={cfg.trainer.num_nodes} is not supported by "
                          "backend=keras (MirroredStrategy uses one machine); use "
                          "backend=lightning")


BACKEND = Backend(name="keras", schema=KerasBackendConfig, package=__name__,
                  packages=("tensorflow", "keras"), checkpoint_suffix=".keras", checks=check)
