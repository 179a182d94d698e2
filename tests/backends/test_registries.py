"""The extension points: one registry per kind and backend, with the config groups' names."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf

from mnistlab.backends import BACKENDS
from mnistlab.backends.keras.env import import_keras
from mnistlab.config import group_options
from mnistlab.config.checks import validate
from mnistlab.config.schema import SCHEMAS
from mnistlab.data.catalog import DATASETS
from mnistlab.data.formats import FORMATS
from mnistlab.errors import ConfigError
from mnistlab.registry import Registry

import_keras("tensorflow")  # before the Keras-side registries import keras

# config group -> (lightning side, Keras side), through each backend's seam
_SIDES = [BACKENDS["lightning"].registries(), BACKENDS["keras"].registries()]
REGISTRIES = {group: tuple(side[group] for side in _SIDES)
              for group in ("optimizer", "scheduler", "aug", "model")}
torch_optim, keras_optim = (side["optimizer"] for side in _SIDES)
torch_augment, keras_augment = (side["aug"] for side in _SIDES)
torch_model, keras_model = (side["model"] for side in _SIDES)


@pytest.mark.parametrize("group", list(REGISTRIES))
def test_both_backends_register_every_option_of_the_group(group: str) -> None:
    torch_side, keras_side = REGISTRIES[group]
    assert torch_side.names() == keras_side.names() == group_options(group)


def test_datasets_backends_and_schemas_match_their_groups(compose_cfg) -> None:
    for name in group_options("data"):
        data = compose_cfg([f"data={name}"]).data
        assert data.format in FORMATS.names(), name
        assert data.format != "idx" or data.name in DATASETS  # an IDX dataset is in the catalog
    assert BACKENDS.names() == group_options("backend")
    for group in ("model", "optimizer", "scheduler", "aug", "logger"):
        assert tuple(sorted(SCHEMAS[group])) == group_options(group), group


@pytest.mark.parametrize("group", list(REGISTRIES))
def test_an_unknown_name_is_one_line_naming_the_group_and_the_options(group: str) -> None:
    for registry in REGISTRIES[group]:
        with pytest.raises(ConfigError) as info:
            registry["bogus"]
        message = str(info.value)
        assert message == (f"unknown option 'bogus' for {group}; choose one of: "
                           f"{', '.join(group_options(group))}")


def test_a_name_registered_twice_is_a_programming_error() -> None:
    registry: Registry = Registry("thing")
    registry.register("a")(len)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(len)


@pytest.mark.parametrize("override", ["aug.name=rotate", "optimizer.name=lion",
                                      "scheduler.name=step", "model.name=vit"])
def test_an_overridden_unknown_name_is_rejected_not_ignored(compose_cfg, override: str) -> None:
    key, value = override.split("=")
    group = key.split(".")[0]
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg([override]))
    assert str(info.value) == (f"{key}={value} is not allowed; expected one of "
                               f"{', '.join(group_options(group))}")


def test_every_option_builds_on_both_backends(compose_cfg) -> None:
    """Each registered builder turns its own YAML into an object on either side."""
    import torch

    for name in group_options("optimizer"):
        opt = compose_cfg([f"optimizer={name}"]).optimizer
        assert torch_optim[name]([torch.nn.Parameter(torch.zeros(2))], opt)
        assert keras_optim[name](opt, opt.lr)
    for name in group_options("aug"):
        aug = compose_cfg([f"aug={name}"]).aug
        x = torch.rand(2, 1, 28, 28)
        assert torch_augment[name](aug)(x).shape == x.shape
        assert isinstance(keras_augment[name](aug), list)
    for name in group_options("model"):
        model = compose_cfg([f"model={name}"]).model
        # the dataset's image shape and channels, not constants
        for height, width, channels in ((28, 28, 1), (32, 24, 3)):
            net = torch_model[name](model, (height, width, channels), 7)
            assert net.eval()(torch.zeros(2, channels, height, width)).shape == (2, 7)
            keras_net = keras_model[name](model, (height, width, channels), 7, 0.0, [])
            x = np.zeros((2, height, width, channels), "float32")
            assert tuple(keras_net(x).shape) == (2, 7)


def test_defaults_of_the_new_options(compose_cfg) -> None:
    cfg = compose_cfg()
    assert cfg.scheduler.name == "none"  # every existing recipe keeps a constant lr
    adamw = compose_cfg(["optimizer=adamw"]).optimizer
    assert OmegaConf.to_container(adamw) == dict(name="adamw", lr=1e-3, beta1=0.9, beta2=0.999,
                                                 eps=1e-7, weight_decay=0.01)
    onecycle = compose_cfg(["scheduler=onecycle"]).scheduler
    assert (onecycle.pct_start, onecycle.div_factor, onecycle.final_div_factor) == (0.3, 25, 1e4)
