"""The memory check before a run: an estimate from the batch, the network and the data, refused in
one line when it cannot fit, with the estimate and the batch that would."""

from __future__ import annotations

import dataclasses

import pytest

from mnistlab.config import memory
from mnistlab.config.checks import validate
from mnistlab.data.catalog import DATASETS
from mnistlab.errors import ConfigError


def test_the_cnn_counts_every_layer_output(compose_cfg) -> None:
    model = compose_cfg().model  # 28x28 -> conv 26x26x32 -> pool 13x13x32 -> conv 11x11x64 ...
    expected = 784 + 26 * 26 * 32 + 13 * 13 * 32 + 11 * 11 * 64 + 5 * 5 * 64 + 2 * 1600 + 128 + 10
    assert memory.cnn_activations(model, (28, 28, 1), 10) == expected
    same = compose_cfg(["model.padding=same"]).model  # 28 -> 28 -> 14 -> 14 -> 7
    expected = 784 + 28 * 28 * 32 + 14 * 14 * 32 + 14 * 14 * 64 + 7 * 7 * 64 + 2 * 3136 + 128 + 10
    assert memory.cnn_activations(same, (28, 28, 1), 10) == expected
    normed = compose_cfg(["model.batch_norm=true"]).model  # BN's output beside each pooled map
    plain = memory.cnn_activations(model, (28, 28, 1), 10)
    assert memory.cnn_activations(normed, (28, 28, 1), 10) == plain + 13 * 13 * 32 + 5 * 5 * 64


def test_the_mlp_and_the_resnet_count_every_layer_output(compose_cfg) -> None:
    mlp = compose_cfg(["model=mlp"]).model  # input, flattened, 256 and 128 twice, logits
    assert memory.ACTIVATIONS["mlp"](mlp, (28, 28, 1), 10) == 2 * 784 + 2 * 384 + 10
    resnet = compose_cfg(["model=resnet"]).model  # 28 -> 28 -> 14 -> 7, 5 maps a block
    expected = (784 + 2 * 16 * 784 + 2 * 5 * 16 * 784
                + (2 + 2 * 5) * 32 * 196 + (2 + 2 * 5) * 64 * 49 + 64 + 10)
    assert memory.ACTIVATIONS["resnet"](resnet, (28, 28, 1), 10) == expected


def test_the_data_counts_every_channel(compose_cfg, monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: 4e9)
    cfg = compose_cfg(["data.batch_size=50000"])
    for channels, base in ((1, "1.6"), (3, "2.1")):  # 1.3 GB + 70,000 images x 5 bytes a value
        spec = dataclasses.replace(DATASETS["mnist"], channels=channels)
        with pytest.raises(ConfigError, match=f"plus {base} GB for the frameworks and the data"):
            memory.check_memory(cfg, spec)


def test_a_batch_that_cannot_fit_is_refused_naming_what_fits(compose_cfg, monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: 4e9)
    with pytest.raises(ConfigError) as info:
        validate(compose_cfg(["data.batch_size=50000"]))
    message = str(info.value)
    assert message.startswith("data.batch_size=50000 needs about 11.3 GB (194 KB a sample"), message
    assert message.endswith("more than the 4.0 GB available here; a batch of at most 12475 fits")
    validate(compose_cfg(["data.batch_size=12475"]))  # what it says fits, fits


def test_the_study_recipes_fit_on_this_machine(compose_cfg) -> None:
    assert memory.available_memory() > 2e9
    validate(compose_cfg([]))
