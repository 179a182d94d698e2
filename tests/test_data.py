"""IDX files, their download from mirrors, and the one train/validation/test split."""

from __future__ import annotations

import functools
import gzip
import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import FILES, idx_bytes, make_dataset, write_idx
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from mnistlab.config import CONF_DIR
from mnistlab.config.schema import DataConfig
from mnistlab.data import Splits, load_splits
from mnistlab.data import download as download_module
from mnistlab.data import splits as splits_module
from mnistlab.data.catalog import DATASETS, ROLES
from mnistlab.data.download import download_file, ensure_files
from mnistlab.data.idx import read_idx
from mnistlab.errors import DataError

NAMES = [FILES[role] for role in ROLES]
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


def compose_data(overrides: list[str]) -> DictConfig:
    """The data group of `train.py OVERRIDES`, interpolations resolved (so it can be merged)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg.data


def data_cfg(folder: Path, **values) -> DictConfig:
    """A data config as the schema types it, without the cost of a full compose."""
    values = {"val_size": 100, "download": False, **values}
    return OmegaConf.structured(DataConfig(name="mnist", dir=str(folder), **values))


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("shape", [(17,), (1,), (6, 28, 28), (3, 4, 5)])
def test_idx_round_trip(tmp_path: Path, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(len(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    path = write_idx(tmp_path / "a.gz", array)
    read = read_idx(path, len(shape))
    assert read.dtype == np.uint8
    assert read.shape == shape
    np.testing.assert_array_equal(read, array)


def test_idx_of_zero_items(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "empty.gz", np.zeros((0, 28, 28), dtype=np.uint8))
    assert read_idx(path, 3).shape == (0, 28, 28)


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


LABELS = np.arange(20, dtype=np.uint8) % 10
IMAGES = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)

BROKEN = {
    # name: (payload, ndim, what the message says)
    "not gzip": (idx_bytes(LABELS), 1, "not a complete gzip file"),
    "html instead of gzip": (b"<html>Not Found</html>", 1, "not a complete gzip file"),
    "empty gzip": (gzip.compress(b""), 1, "wrong magic number none"),
    "truncated gzip stream": (gzip.compress(idx_bytes(IMAGES))[:-40], 3,
                              "not a complete gzip file"),
    "gzip header only": (gzip.compress(idx_bytes(IMAGES))[:12], 3, "not a complete gzip file"),
    "fewer bytes than the header says": (
        gzip.compress(idx_bytes(IMAGES)[:-5]), 3,
        "header says (4, 28, 28) = 3136 bytes of data, found 3131"),
    "more bytes than the header says": (gzip.compress(idx_bytes(LABELS) + b"\0"), 1,
                                        "header says (20,) = 20 bytes of data, found 21"),
    "labels read as images": (gzip.compress(idx_bytes(LABELS)), 3,
                              "wrong magic number 00000801, expected 00000803"),
    "images read as labels": (gzip.compress(idx_bytes(IMAGES)), 1,
                              "wrong magic number 00000803, expected 00000801"),
    "float data": (gzip.compress(b"\0\0\x0d\x01" + idx_bytes(LABELS)[4:]), 1,
                   "wrong magic number 00000d01"),
    "nonzero first bytes": (gzip.compress(b"\x1f\x8b\x08\x01" + idx_bytes(LABELS)[4:]), 1,
                            "wrong magic number 1f8b0801"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_idx_file_is_a_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    payload, ndim, says = BROKEN[case]
    path = _write(tmp_path / "broken-idx-ubyte.gz", payload)
    with pytest.raises(DataError) as info:
        read_idx(path, ndim)
    message = str(info.value)
    assert str(path) in message
    assert says in message
    assert "\n" not in message


def test_a_header_cut_short_is_not_called_a_wrong_magic_number(tmp_path: Path) -> None:
    path = _write(tmp_path / "short-idx3-ubyte.gz", gzip.compress(idx_bytes(IMAGES)[:10]))
    with pytest.raises(DataError) as info:
        read_idx(path, 3)
    message = str(info.value)
    assert str(path) in message
    assert "wrong magic number" not in message  # the magic, 00000803, is right


def test_a_missing_idx_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as info:
        read_idx(tmp_path / "nope.gz", 1)
    assert str(tmp_path / "nope.gz") in str(info.value)


def test_label_and_image_counts_must_match(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "mnist")
    labels = read_idx(folder / FILES["train_labels"], 1)
    write_idx(folder / FILES["train_labels"], labels[:-1])
    with pytest.raises(DataError) as info:
        load_splits(data_cfg(folder))
    message = str(info.value)
    assert str(folder) in message
    assert "300 train images but 299 labels" in message


def test_test_label_and_image_counts_must_match(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "mnist")
    images = read_idx(folder / FILES["test_images"], 3)
    write_idx(folder / FILES["test_images"], np.concatenate([images, images[:3]]))
    with pytest.raises(DataError, match="53 test images but 50 labels"):
        load_splits(data_cfg(folder))


# ---------------------------------------------------------------- download


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Mirror:
    root: Path  # what the server serves
    url: str
    requests: list[str]


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours *_proxy variables; 127.0.0.1 must be reached directly, and never wait."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(download_module, "TIMEOUT_SECONDS", 5)


@pytest.fixture
def mirror(tmp_path: Path, no_proxy: None) -> Iterator[Mirror]:
    """An HTTP server on 127.0.0.1 (a free port) serving tmp_path/mirror; shut down afterwards."""
    root = tmp_path / "mirror"
    root.mkdir()
    requests: list[str] = []

    class Handler(_QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=root))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield Mirror(root, f"http://127.0.0.1:{server.server_address[1]}/", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url(no_proxy: None) -> str:
    """A URL on a port that nothing listens on: connections are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_a_good_file(tmp_path: Path, mirror: Mirror) -> None:
    served = write_idx(mirror.root / FILES["train_labels"], LABELS)
    folder = tmp_path / "data"
    saved = download_file(served.name, folder, [mirror.url], _md5(served))
    assert saved == folder / served.name
    assert saved.read_bytes() == served.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == [served.name]  # no temp file left
    np.testing.assert_array_equal(read_idx(saved, 1), LABELS)
    assert mirror.requests == [f"/{served.name}"]


def test_download_tries_the_next_mirror(tmp_path: Path, mirror: Mirror, dead_url: str) -> None:
    served = write_idx(mirror.root / "good" / FILES["train_labels"], LABELS)
    write_idx(mirror.root / "stale" / FILES["train_labels"], LABELS[:5])
    mirrors = [dead_url, mirror.url + "missing/", mirror.url + "stale/", mirror.url + "good/"]
    saved = download_file(served.name, tmp_path / "data", mirrors, _md5(served))
    assert saved.read_bytes() == served.read_bytes()
    assert len(mirror.requests) == 3


def test_an_md5_mismatch_is_a_data_error_and_leaves_no_file(tmp_path: Path,
                                                           mirror: Mirror) -> None:
    served = write_idx(mirror.root / FILES["train_images"], IMAGES)
    folder = tmp_path / "data"
    expected = "0" * 32
    with pytest.raises(DataError) as info:
        download_file(served.name, folder, [mirror.url], expected)
    message = str(info.value)
    assert served.name in message
    assert f"md5 {_md5(served)} != expected {expected}" in message
    assert list(folder.iterdir()) == []  # neither the file nor a .part temp file


def test_a_file_missing_on_the_mirror_is_a_data_error(tmp_path: Path, mirror: Mirror) -> None:
    with pytest.raises(DataError) as info:
        download_file(FILES["test_labels"], tmp_path / "data", [mirror.url], "0" * 32)
    assert f"{mirror.url}{FILES['test_labels']}" in str(info.value)
    assert list((tmp_path / "data").iterdir()) == []


def test_ensure_files_downloads_only_what_is_missing(tmp_path: Path, mirror: Mirror) -> None:
    make_dataset(mirror.root)
    md5s = {name: _md5(mirror.root / name) for name in NAMES}
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / FILES["test_labels"]).write_bytes((mirror.root / FILES["test_labels"]).read_bytes())
    ensure_files(folder, NAMES, md5s, [mirror.url], download=True)
    assert sorted(mirror.requests) == sorted(f"/{n}" for n in NAMES if n != FILES["test_labels"])
    assert sorted(p.name for p in folder.iterdir()) == sorted(NAMES)
    for name in NAMES:
        assert (folder / name).read_bytes() == (mirror.root / name).read_bytes()
    mirror.requests.clear()
    ensure_files(folder, NAMES, md5s, [mirror.url], download=True)  # all there: no request
    assert mirror.requests == []


def _assert_names_folder_and_files(message: str, folder: Path) -> None:
    assert str(folder) in message
    for name in NAMES:
        assert name in message, name
    assert "\n" not in message


def test_a_server_that_is_down_via_ensure_files(tmp_path: Path, dead_url: str) -> None:
    folder = tmp_path / "data" / "mnist"
    with pytest.raises(DataError) as info:
        ensure_files(folder, NAMES, DATASETS["mnist"].md5, [dead_url], download=True)
    message = str(info.value)
    _assert_names_folder_and_files(message, folder)
    assert "download failed" in message and dead_url in message
    assert list(folder.iterdir()) == []


def test_a_server_that_is_down_via_load_splits(tmp_path: Path, dead_url: str) -> None:
    data = compose_data([f"paths.data={tmp_path / 'data'}", f"data.mirrors=[{dead_url}]"])
    assert list(data.mirrors) == [dead_url]
    with pytest.raises(DataError) as info:
        load_splits(data)
    message = str(info.value)
    _assert_names_folder_and_files(message, tmp_path / "data" / "mnist")
    assert dead_url in message
    assert "MNISTLAB_DATA_DIR" in message  # says how to point at existing files instead


def test_download_false_with_missing_files(tmp_path: Path, monkeypatch) -> None:
    def no_network(*args: object) -> None:
        raise AssertionError("data.download=false must not download")

    monkeypatch.setattr(download_module, "download_file", no_network)
    data = compose_data([f"paths.data={tmp_path / 'nowhere'}", "data.download=false"])
    with pytest.raises(DataError) as info:
        load_splits(data)
    message = str(info.value)
    _assert_names_folder_and_files(message, tmp_path / "nowhere" / "mnist")
    assert "data.download=true" in message
    assert not (tmp_path / "nowhere").exists()  # nothing created on the way


def test_download_false_names_only_the_missing_file(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path / "mnist")
    (folder / FILES["test_images"]).unlink()
    with pytest.raises(DataError) as info:
        load_splits(data_cfg(folder))
    message = str(info.value)
    assert f"lacks {FILES['test_images']};" in message
    assert not any(FILES[role] in message for role in FILES if role != "test_images")


def test_a_missing_folder_names_each_file_once(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_splits(data_cfg(tmp_path / "nowhere"))
    message = str(info.value)
    assert all(message.count(name) == 1 for name in FILES.values()), message


# ---------------------------------------------------------------- the split: generated data


def _check_split(splits: Splits, n_train_total: int, val_size: int) -> None:
    train, val = splits.train_index, splits.val_index
    assert len(val) == val_size
    assert len(train) == n_train_total - val_size
    assert not set(train.tolist()) & set(val.tolist())
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n_train_total))
    assert splits.x_train.shape == (len(train), 28, 28) and splits.x_train.dtype == np.uint8
    assert splits.x_val.shape == (val_size, 28, 28)
    for y in (splits.y_train, splits.y_val, splits.y_test):
        assert y.dtype == np.int64


def _all_train(splits: Splits) -> tuple[np.ndarray, np.ndarray]:
    """The official training file, put back together from the two parts of the split."""
    n = len(splits.train_index) + len(splits.val_index)
    x = np.zeros((n, 28, 28), dtype=np.uint8)
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
    np.testing.assert_array_equal(x, read_idx(folder / FILES["train_images"], 3))
    np.testing.assert_array_equal(y, read_idx(folder / FILES["train_labels"], 1))
    np.testing.assert_array_equal(splits.x_test, read_idx(folder / FILES["test_images"], 3))
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
    arrays: dict[str, np.ndarray]  # the four official files, as read_dataset returns them

    def split(self, **overrides) -> Splits:
        """load_splits with other settings, on the arrays already read (no second 2 s read)."""
        data = OmegaConf.merge(self.data, overrides)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(splits_module, "read_dataset", lambda folder, spec: self.arrays)
            return load_splits(data)


@pytest.fixture(scope="session")
def real_mnist(real_data: Path) -> RealMnist:
    data = compose_data([f"paths.data={real_data}", "data.download=false"])
    splits = load_splits(data)  # the real thing, once: reads and checks the four files
    x, y = _all_train(splits)
    arrays = {"train_images": x, "train_labels": y.astype(np.uint8),
              "test_images": splits.x_test, "test_labels": splits.y_test.astype(np.uint8)}
    return RealMnist(data, splits, arrays)


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
    np.testing.assert_array_equal(s.x_test, read_idx(s.files["test_images"], 3))
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
