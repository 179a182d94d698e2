"""Helpers of the tests that start train.py and stop it midway."""

from __future__ import annotations

import subprocess
import sys
import time

from mnistlab.config import REPO_ROOT
from tests.conftest import train_env


def start(*args: str) -> subprocess.Popen:
    """train.py in its own process group, so a kill takes W&B's helper process with it."""
    return subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=train_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"ended early: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
