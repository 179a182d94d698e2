"""The dataset's files: IDX read back, every way a file can be broken as one DataError naming it,
and downloads from mirrors (a local HTTP server): checksums, the next mirror, one-line errors."""

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

from mnistlab.data import download as download_module
from mnistlab.data import load_splits
from mnistlab.data.catalog import DATASETS
from mnistlab.data.download import download_file, ensure_files
from mnistlab.data.idx import read_idx
from mnistlab.errors import DataError
from tests.conftest import FILES, idx_bytes, make_dataset, write_idx
from tests.data.conftest import IMAGES, LABELS, NAMES, compose_data, data_cfg

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
