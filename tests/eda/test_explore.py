"""The EDA's config and data checks, in this process: bad values are ConfigErrors naming key and
value, a wrong type fails at compose time, missing or bad data is a DataError. Its runs:
tests/processes/test_eda_runs.py."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mnistlab.data import load_splits
from mnistlab.eda.explore import validate_eda
from mnistlab.errors import USER_ERRORS, ConfigError, DataError, one_line
from tests.conftest import FILES, TEST_PER_CLASS, VAL_SIZE, compose_eda, write_idx, write_planted


@pytest.mark.parametrize(("override", "message"), [
    ("outliers_per_class=0", "outliers_per_class=0 is not allowed; expected an integer from 1"),
    ("samples_per_class=101", "samples_per_class=101 is not allowed"),
    ("iqr_factor=-1", "iqr_factor=-1.0 is not allowed"),
    ("seed=-3", "seed=-3 is not allowed"),
    ("data.val_size=5", "data.val_size=5 is not allowed"),
])
def test_bad_values_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_eda(compose_eda([override, "logger=none"]))


def test_wrong_type_fails_at_compose_time() -> None:
    with pytest.raises(USER_ERRORS) as raised:
        compose_eda(["samples_per_class=many"])
    assert "samples_per_class" in one_line(raised.value)


def test_missing_data_folder_is_a_data_error(tmp_path: Path) -> None:
    cfg = compose_eda([f"paths.data={tmp_path / 'nowhere'}", "data.download=false"])
    with pytest.raises(DataError, match="nowhere"):
        load_splits(cfg.data)


def test_label_beyond_the_classes_is_a_data_error(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "mnist"
    write_planted(folder)
    labels = np.repeat(np.arange(10), TEST_PER_CLASS)
    labels[0] = 11
    write_idx(folder / FILES["test_labels"], labels.astype(np.uint8))
    cfg = compose_eda([f"paths.data={tmp_path / 'data'}", f"data.val_size={VAL_SIZE}"])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz: label 11 is not a class"):
        load_splits(cfg.data)


def test_split_too_small_for_val_size_is_a_config_error(tiny_data: Path) -> None:
    cfg = compose_eda([f"paths.data={tiny_data}", "data.val_size=295"])
    with pytest.raises(ConfigError, match="data.val_size=295"):
        load_splits(cfg.data)
