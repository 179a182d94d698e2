"""Fetch missing dataset files from a mirror list, md5-checked and written atomically."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from mnistlab.atomic import write_atomically
from mnistlab.errors import DataError

TIMEOUT_SECONDS = 30


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return response.read()


def download_file(name: str, folder: Path, mirrors: Sequence[str], md5: str) -> Path:
    """Try each mirror in turn; return the saved path, or raise DataError naming every failure."""
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            payload = _fetch(url)
        except (urllib.error.URLError, OSError, ValueError) as e:
            failures.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        digest = hashlib.md5(payload).hexdigest()
        if digest != md5:
            failures.append(f"{url}: md5 {digest} != expected {md5}")
            continue
        target = folder / name
        write_atomically(target, payload)
        return target
    raise DataError(f"could not download {name}: " + "; ".join(failures or ["no mirrors"]))


def ensure_files(folder: Path, names: Sequence[str], md5s: dict[str, str],
                 mirrors: Sequence[str], download: bool) -> None:
    """Make sure every file is in `folder`, downloading the missing ones when allowed."""
    missing = [n for n in names if not (folder / n).is_file()]
    if not missing:
        return
    hint = (f"data folder {folder} lacks {', '.join(missing)}; point data.dir or "
            "MNISTLAB_DATA_DIR at a folder that has the dataset's files")
    if not download:
        raise DataError(f"{hint}, or set data.download=true")
    try:
        for name in missing:
            download_file(name, folder, mirrors, md5s[name])
    except DataError as e:
        raise DataError(f"{hint}; download failed: {e}") from None
