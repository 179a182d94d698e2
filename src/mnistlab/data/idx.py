"""Read gzip-compressed IDX files (the format MNIST ships in) into numpy arrays.

Small enough to own: the format is a magic number, the dimensions, then raw uint8 data, and owning
it lets every way a file can be broken end in one clear error naming the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError

UINT8 = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Return the uint8 array of an IDX file with `ndim` dimensions (1 for labels, 3 for images)."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"data file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"corrupt data file {path}: not a complete gzip file ({e})") from None
    header = 4 + 4 * ndim
    if len(raw) < header and raw[:4] == bytes([0, 0, UINT8, ndim]):
        raise DataError(f"corrupt data file {path}: header cut short ({len(raw)} bytes)")
    if len(raw) < header or raw[0] != 0 or raw[1] != 0 or raw[2] != UINT8 or raw[3] != ndim:
        raise DataError(
            f"corrupt data file {path}: wrong magic number {raw[:4].hex() or 'none'}, "
            f"expected 000008{ndim:02x} (uint8 IDX with {ndim} dimensions)"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(
            f"corrupt data file {path}: header says {dims} = {expected} bytes of data, "
            f"found {len(raw) - header}"
        )
    # a writable copy: torch shares memory with the arrays it trains on, and warns about a
    # read-only one (np.frombuffer of bytes)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
