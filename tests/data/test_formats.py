"""The dataset formats: an image folder, an .npz, scikit-learn's digits, and their bad inputs,
each one line naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from mnistlab.data import load_splits
from mnistlab.data.formats import image_folder
from mnistlab.errors import ConfigError, DataError
from tests.conftest import COLOURS, make_image_folder
from tests.data.conftest import compose_data

CLASSES = tuple(COLOURS)


def folder_cfg(root: Path, *overrides: str) -> DictConfig:
    return compose_data(["data=image_folder", f"data.dir={root}", "data.val_size=6",
                         *overrides])


def npz_of(root: Path, path: Path, **extra: np.ndarray) -> Path:
    """The arrays of the image folder at `root`, as an .npz."""
    s = load_splits(folder_cfg(root))
    x = np.concatenate([s.x_train, s.x_val])
    y = np.concatenate([s.y_train, s.y_val])
    np.savez(path, x_train=x, y_train=y, x_test=s.x_test, y_test=s.y_test,
             classes=np.array(s.spec.classes), **extra)
    return path


def test_an_rgb_image_folder_with_a_test_part(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shapes")
    s = load_splits(folder_cfg(root))
    assert s.spec.classes == CLASSES and s.spec.input_shape == (32, 32, 3)
    assert s.spec.train_size == 60 and s.spec.name == "image_folder"
    assert s.x_train.shape == (54, 32, 32, 3) and s.x_val.shape == (6, 32, 32, 3)
    assert s.x_test.shape == (15, 32, 32, 3) and s.x_train.dtype == np.uint8
    assert np.bincount(s.y_val).tolist() == [2, 2, 2]  # stratified
    assert np.bincount(s.y_test).tolist() == [5, 5, 5]
    # each class's colour is where its label says
    red = s.x_test[..., 0].astype(int) - s.x_test[..., 2]
    assert (red.max(axis=(1, 2)) > 100).tolist() == (s.y_test == 0).tolist()


def test_an_image_folder_is_decoded_once_then_read_from_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_image_folder(tmp_path / "shapes")
    first = load_splits(folder_cfg(root))

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(image_folder, "decode", no_decode)
    again = load_splits(folder_cfg(root))
    np.testing.assert_array_equal(again.x_train, first.x_train)
    (root / "train" / "cat" / "000.png").write_bytes(
        (root / "train" / "cat" / "001.png").read_bytes())  # another checksum: decoded
    with pytest.raises(AssertionError, match="decoded again"):
        load_splits(folder_cfg(root))


def test_without_a_test_part_a_stratified_one_is_cut(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shapes", train_per_class=30, test_per_class=None)
    s = load_splits(folder_cfg(root, "data.test_size=0.2"))
    assert np.bincount(s.y_test).tolist() == [6, 6, 6]
    assert len(s.x_train) + len(s.x_val) == s.spec.train_size == 72
    positions = np.concatenate([s.train_index, s.val_index])
    assert len(set(positions.tolist())) == 72  # no image twice


def test_grayscale_images_give_one_channel_and_image_size_resizes(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "gray"
    for name in ("a", "b"):
        (root / "train" / name).mkdir(parents=True)
        for i, side in enumerate((20, 24, 28)):
            Image.new("L", (side, side), color=40 * i).save(root / "train" / name / f"{i}.png")
    with pytest.raises(DataError) as info:
        load_splits(folder_cfg(root, "data.val_size=2", "data.test_size=2"))
    message = str(info.value)
    assert "\n" not in message and "24x24" in message and "data.image_size" in message
    s = load_splits(folder_cfg(root, "data.val_size=2", "data.test_size=2",
                               "data.image_size=[16,12]"))
    assert s.spec.input_shape == (16, 12, 1) and s.spec.classes == ("a", "b")
    rgb = load_splits(folder_cfg(root, "data.val_size=2", "data.test_size=2",
                                 "data.image_size=[16,12]", "data.channels=3"))
    assert rgb.spec.input_shape == (16, 12, 3)


def test_an_npz_gives_the_same_arrays_as_its_folder(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shapes")
    from_folder = load_splits(folder_cfg(root))
    path = npz_of(root, tmp_path / "shapes.npz")
    s = load_splits(compose_data(["data=npz", f"data.path={path}", "data.val_size=6"]))
    assert s.spec.classes == CLASSES and s.spec.input_shape == (32, 32, 3)
    np.testing.assert_array_equal(s.x_test, from_folder.x_test)
    assert sorted(s.y_train.tolist()) == sorted(from_folder.y_train.tolist())


def test_an_npz_of_float_grayscale_images_without_classes_or_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "plain.npz"
    np.savez(path, x_train=rng.random((40, 10, 10)), y_train=np.arange(40) % 4)
    s = load_splits(compose_data(["data=npz", f"data.path={path}", "data.val_size=0.2",
                                  "data.test_size=8"]))
    assert s.spec.classes == ("0", "1", "2", "3") and s.spec.input_shape == (10, 10, 1)
    assert (len(s.x_train), len(s.x_val), len(s.x_test)) == (25, 7, 8)  # shares round up
    assert s.x_train.dtype == np.uint8


def test_digits_ship_with_scikit_learn() -> None:
    s = load_splits(compose_data(["data=digits"]))
    assert s.spec.input_shape == (8, 8, 1) and s.spec.classes == tuple("0123456789")
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 1797
    assert len(s.x_test) == 360 and len(s.x_val) == 144  # 20 % held out, then 10 % of the rest
    assert s.x_train.max() == 255 and set(np.unique(s.y_test).tolist()) == set(range(10))


def one_line(error: pytest.ExceptionInfo, *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def test_bad_image_folders_are_one_line(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "shapes")
    broken = root / "train" / "dog" / "007.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError) as info:
        load_splits(folder_cfg(root))
    one_line(info, "unreadable image", str(broken))

    empty = make_image_folder(tmp_path / "empty")
    (empty / "train" / "owl").mkdir()
    with pytest.raises(DataError) as info:
        load_splits(folder_cfg(empty))
    one_line(info, "class folder", "owl", "no images")

    (tmp_path / "notrain").mkdir()
    with pytest.raises(DataError) as info:
        load_splits(folder_cfg(tmp_path / "notrain"))
    one_line(info, "no train/ folder")

    single = tmp_path / "single"
    make_image_folder(single, test_per_class=None)
    for name in ("dog", "fox"):
        for f in (single / "train" / name).iterdir():
            f.unlink()
        (single / "train" / name).rmdir()
    with pytest.raises(DataError) as info:
        load_splits(folder_cfg(single, "data.val_size=2", "data.test_size=2"))
    one_line(info, "1 class (cat)", "at least two")


def test_bad_npz_files_are_one_line(tmp_path: Path) -> None:
    x = np.zeros((20, 8, 8), np.uint8)
    cases = {
        "labels.npz": (dict(x_train=x, y_train=np.arange(20) % 3, classes=np.array(["a", "b"])),
                       ["train label 2 is not a class (0..1)"]),
        "missing.npz": (dict(x_train=x), ["no y_train"]),
        "shape.npz": (dict(x_train=np.zeros((20, 8, 8, 2), np.uint8), y_train=np.arange(20) % 2),
                      ["(20, 8, 8, 2)", "1 or 3 channels"]),
        "dtype.npz": (dict(x_train=x.astype(np.int32) + 300, y_train=np.arange(20) % 2),
                      ["int32", "uint8"]),
        "test.npz": (dict(x_train=x, y_train=np.arange(20) % 2,
                          x_test=np.zeros((4, 9, 9), np.uint8), y_test=np.arange(4) % 2),
                     ["test images are (9, 9, 1)"]),
    }
    for name, (arrays, parts) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(DataError) as info:
            load_splits(compose_data(["data=npz", f"data.path={tmp_path / name}"]))
        one_line(info, name, *parts)
    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    with pytest.raises(DataError) as info:
        load_splits(compose_data(["data=npz", f"data.path={tmp_path / 'garbage.npz'}"]))
    one_line(info, "garbage.npz", "not a readable .npz")


def test_a_test_split_that_would_leave_a_class_empty_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "rare.npz"
    y = np.array([0] * 20 + [1] * 20 + [2])  # class 2 has one image: it cannot be in both parts
    np.savez(path, x_train=np.zeros((41, 8, 8), np.uint8), y_train=y)
    with pytest.raises(ConfigError) as info:
        load_splits(compose_data(["data=npz", f"data.path={path}"]))
    one_line(info, "data.test_size=0.2", "41 training images", str(path))
