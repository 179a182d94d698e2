"""The one train/validation/test split: stratified, deterministic and cached, on generated and
on the real data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, OmegaConf

from mnistlab.data import Splits, load_splits
from mnistlab.data import splits as splits_module
from mnistlab.data.catalog import DATASETS, ROLES
from mnistlab.data.formats import Loaded
from mnistlab.data.idx import read_idx
from tests.conftest import FILES, make_dataset
from tests.data.conftest import compose_data, data_cfg

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


# ---------------------------------------------------------------- the split: generated data


def _check_split(splits: Splits, n_train_total: int, val_size: int) -> None:
    train, val = splits.train_index, splits.val_index
    assert len(val) == val_size
    assert len(train) == n_train_total - val_size
    assert not set(train.tolist()) & set(val.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n_train_total))
    assert splits.x_train.shape == (len(train), 28, 28, 1) and splits.x_train.dtype == np.uint8
    assert splits.x_val.shape == (val_size, 28, 28, 1)
    for y in (splits.y_train, splits.y_val, splits.y_test):
        assert y.dtype == np.int64


def _all_train(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """The official training file, put back together from the two parts of the split."""
    n = len(splits.train_index) + len(splits.val_index)
    x = np.zeros((n, 28, 28, 1), dtype=np.uint8)
    y = np.full(n, -1, dtype=np.int64)
    x[splits.train_index], y[splits.train_index] = splits.x_train, splits.y_train
    x[splits.val_index], y[splits.val_index] = splits.x_val, splits.y_val
    return x, y


def _assert_stratified(splits: Splits) -> None:
    _, y = _all_train(splits)
    share = len(splits.val_index) / len(y)
    full = np.bincount(y, minlength=10)
    val = np.bincount(splits.y_val, minlength=10)
    assert np.all(np.abs(val - full * share) <= 1), (val, full * share)


def test_split_of_generated_data(tiny_data: Path) -> None:
    folder = tiny_data / "mnist"
    splits = load_splits(data_cfg(folder))
    _check_split(splits, 300, 100)
    assert np.all(np.bincount(splits.y_val) == 10)  # 30 per class, a third in val
    _assert_stratified(splits)
    x, y = _all_train(splits)
    np.testing.assert_array_equal(x[..., 0], read_idx(folder / FILES["train_images"], 3))
    np.testing.assert_array_equal(y, read_idx(folder / FILES["train_labels"], 1))
    np.testing.assert_array_equal(splits.x_test[..., 0],
                                  read_idx(folder / FILES["test_images"], 3))
    np.testing.assert_array_equal(splits.y_test, read_idx(folder / FILES["test_labels"], 1))
    assert splits.files == {role: folder / FILES[role] for role in ROLES}
    assert splits.spec is DATASETS["mnist"]


def test_split_of_generated_data_is_deterministic(tiny_data: Path) -> None:
    folder = tiny_data / "mnist"
    first, again = load_splits(data_cfg(folder)), load_splits(data_cfg(folder))
    np.testing.assert_array_equal(first.train_index, again.train_index)
    np.testing.assert_array_equal(first.val_index, again.val_index)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    other = load_splits(data_cfg(folder, split_seed=7))
    assert set(other.val_index.tolist()) != set(first.val_index.tolist())
    _check_split(other, 300, 100)


def test_checksums_tell_splits_apart(tiny_data: Path) -> None:
    """summary.json's data_sha256: equal for the same split, the test part alone equal for a
    split of the same files with another seed."""
    folder = tiny_data / "mnist"
    first, again = load_splits(data_cfg(folder)), load_splits(data_cfg(folder))
    assert first.checksums() == again.checksums()
    other = load_splits(data_cfg(folder, split_seed=7)).checksums()
    assert other["test"] == first.checksums()["test"]
    assert other["train"] != first.checksums()["train"] and other["val"] != first.checksums()["val"]


def test_train_subset_keeps_the_first_n(tiny_data: Path) -> None:
    folder = tiny_data / "mnist"
    full = load_splits(data_cfg(folder))
    sub = load_splits(data_cfg(folder, train_subset=37))
    np.testing.assert_array_equal(sub.train_index, full.train_index[:37])
    np.testing.assert_array_equal(sub.x_train, full.x_train[:37])
    np.testing.assert_array_equal(sub.y_train, full.y_train[:37])
    np.testing.assert_array_equal(sub.val_index, full.val_index)  # val and test are untouched
    np.testing.assert_array_equal(sub.y_test, full.y_test)


def test_limited_truncates_each_split(tiny_data: Path) -> None:
    full = load_splits(data_cfg(tiny_data / "mnist"))
    cut = full.limited(20, 7, 3)
    assert (len(cut.x_train), len(cut.x_val), len(cut.x_test)) == (20, 7, 3)
    for name, n in (("train", 20), ("val", 7), ("test", 3)):
        np.testing.assert_array_equal(getattr(cut, f"x_{name}"), getattr(full, f"x_{name}")[:n])
        np.testing.assert_array_equal(getattr(cut, f"y_{name}"), getattr(full, f"y_{name}")[:n])
    np.testing.assert_array_equal(cut.train_index, full.train_index[:20])
    np.testing.assert_array_equal(cut.val_index, full.val_index[:7])
    same = full.limited(None, None, None)
    assert len(same.x_train) == 200 and len(same.x_val) == 100 and len(same.x_test) == 50
    more = full.limited(10_000, 10_000, 10_000)  # more than there is: all of it
    assert len(more.x_train) == 200 and len(more.x_test) == 50
    assert cut.spec is full.spec and cut.files == full.files


# ---------------------------------------------------------------- the split: real data


@dataclass
class RealMnist:
    data: DictConfig
    splits: Splits
    loaded: Loaded  # the four official files, as the idx format reads them

    def split(self, **overrides) -> Splits:
        """load_splits with other settings, on the arrays already read (no second 2 s read)."""
        data = OmegaConf.merge(self.data, overrides)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(splits_module, "load_dataset", lambda data: self.loaded)
            return load_splits(data)


@pytest.fixture(scope="session")
def real_mnist(real_data: Path) -> RealMnist:
    data = compose_data([f"paths.data={real_data}", "data.download=false"])
    splits = load_splits(data)  # the real thing, once: reads and checks the four files
    x, y = _all_train(splits)
    loaded = Loaded(title="MNIST", classes=splits.spec.classes, x_train=x, y_train=y,
                    x_test=splits.x_test, y_test=splits.y_test, files=splits.files)
    return RealMnist(data, splits, loaded)


def test_real_split_is_50000_10000_10000(real_mnist: RealMnist) -> None:
    s = real_mnist.splits
    _check_split(s, 60_000, 10_000)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (50_000, 10_000, 10_000)
    assert s.spec.name == "mnist" and s.spec.classes == tuple("0123456789")
    assert set(np.unique(s.y_train).tolist()) == set(range(10))


def test_real_split_is_stratified(real_mnist: RealMnist) -> None:
    _assert_stratified(real_mnist.splits)


def test_real_test_set_is_the_official_one(real_mnist: RealMnist) -> None:
    s = real_mnist.splits
    np.testing.assert_array_equal(s.x_test[..., 0], read_idx(s.files["test_images"], 3))
    np.testing.assert_array_equal(s.y_test, read_idx(s.files["test_labels"], 1))
    labels = read_idx(s.files["train_labels"], 1)
    np.testing.assert_array_equal(s.y_train, labels[s.train_index])
    np.testing.assert_array_equal(s.y_val, labels[s.val_index])


def test_real_split_is_deterministic(real_mnist: RealMnist) -> None:
    again = real_mnist.split()
    np.testing.assert_array_equal(again.train_index, real_mnist.splits.train_index)
    np.testing.assert_array_equal(again.val_index, real_mnist.splits.val_index)
    other = real_mnist.split(split_seed=7)
    assert not np.array_equal(np.sort(other.val_index), np.sort(real_mnist.splits.val_index))
    _check_split(other, 60_000, 10_000)
    _assert_stratified(other)


def test_real_train_subset_and_val_size(real_mnist: RealMnist) -> None:
    sub = real_mnist.split(train_subset=1000)
    np.testing.assert_array_equal(sub.train_index, real_mnist.splits.train_index[:1000])
    np.testing.assert_array_equal(sub.val_index, real_mnist.splits.val_index)
    bigger_val = real_mnist.split(val_size=12_000)
    _check_split(bigger_val, 60_000, 12_000)
    _assert_stratified(bigger_val)


def test_fashion_mnist_real_data(real_data: Path) -> None:
    data = compose_data([f"paths.data={real_data}", "data=fashion_mnist", "data.download=false"])
    assert Path(data.dir) == real_data / "fashion-mnist"
    s = load_splits(data)
    assert s.spec.name == "fashion_mnist"
    assert s.spec.classes == FASHION_CLASSES
    _check_split(s, 60_000, 10_000)
    assert len(s.x_test) == 10_000
    _assert_stratified(s)
    assert np.all(np.bincount(s.y_val, minlength=10) == 1000)  # 6,000 of each item in train


def test_the_split_is_cached_by_the_labels_checksum(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.model_selection

    folder = make_dataset(tmp_path / "mnist")
    first = load_splits(data_cfg(folder))
    assert list((tmp_path / "cache" / "splits").glob("*.npz"))

    def no_split(*args, **kwargs):
        raise AssertionError("split computed again")

    monkeypatch.setattr(sklearn.model_selection, "train_test_split", no_split)
    again = load_splits(data_cfg(folder))
    np.testing.assert_array_equal(again.train_index, first.train_index)
    np.testing.assert_array_equal(again.val_index, first.val_index)
    other_seed = data_cfg(folder, split_seed=7)  # another key: computed (and fails here)
    with pytest.raises(AssertionError, match="computed again"):
        load_splits(other_seed)
