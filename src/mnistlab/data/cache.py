"""Where mnistlab keeps what it can compute again (splits, converted image folders)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from mnistlab.atomic import write_atomically


def cache_dir() -> Path:
    """MNISTLAB_CACHE_DIR, else $XDG_CACHE_HOME/mnistlab, else ~/.cache/mnistlab."""
    if "MNISTLAB_CACHE_DIR" in os.environ:
        return Path(os.environ["MNISTLAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mnistlab"


def read_cached(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays stored at `path`; None when absent or unreadable (computed again)."""
    with contextlib.suppress(OSError, ValueError, KeyError, EOFError), \
            np.load(path, allow_pickle=False) as stored:
        return {key: stored[key] for key in stored.files}
    return None


def write_cached(path: Path, **arrays: np.ndarray) -> None:
    """Atomically; a read-only cache only costs the next run the work."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, buffer.getvalue())
