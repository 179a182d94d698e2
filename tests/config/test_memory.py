"""The memory check before a run: an estimate from the batch, the network and the data, refused in
one line when it cannot fit, with the estimate and the batch that would."""

from __future__ import annotations

import pytest

from mnistlab.config import memory
from mnistlab.config.checks import validate
from mnistlab.errors import ConfigError


def test_the_cnn_counts_every_layer_output(compose_cfg) -> None:
    model = compose_cfg().model  # 28x28 -> conv 26x26x32 -> pool 13x13x32 -> conv 11x11x64 ...
    expected = 784 + 26 * 26 * 32 + 13 * 13 * 32 + 11 * 11 * 64 + 5 * 5 * 64 + 2 * 1600 + 128 + 10
    assert memory.cnn_activations(model, (28, 28), 10) == expected


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
