"""A full disk during a run: one `error:` line naming the file, the free space and the command
that resumes it, status "failed" with the checkpoints that fit intact, and the same command
finishes the run once there is room. On a real tmpfs of 4 MB (one checkpoint fits, not two)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import train_here


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must mount the tmpfs of the disk-full tests")
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("backend", ["lightning", "keras"])
def test_disk_full_is_one_line_and_resumable(backend: str, tiny_data: Path, small_disk: Path,
                                            tmp_path: Path) -> None:
    run = small_disk / "run"
    args = ("trainer=debug", f"backend={backend}", f"paths.data={tiny_data}", "data.val_size=100",
            "logger=none", f"hydra.run.dir={run}")
    done = train_here(*args, output=tmp_path / "out")
    assert done.returncode == 2, done.stderr[-3000:]
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: no space left to write {run}/checkpoints/last."), line
    assert " MB free there); " in line and line.endswith(f"resume with: python train.py "
                                                         f"resume={run}"), line
    assert "Traceback" not in done.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]  # no half-written file left

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = train_here(*args, output=tmp_path / "out")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
