"""Write a file so that no reader ever sees it half-written: a temp file, then a rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mnistlab.errors import disk_full


def write_atomically(path: Path, data: bytes | str) -> None:
    """A crash mid-write leaves at most a hidden temp file, never a truncated file at `path`;
    a full disk is a DiskFullError naming the file, with the temp file removed."""
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = disk_full(path, e)
        if full is not None:
            raise full from None
        raise
