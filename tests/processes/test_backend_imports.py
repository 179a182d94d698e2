"""Each backend's training stack is imported only when it trains: a fresh interpreter shows it."""

from __future__ import annotations

import subprocess
import sys

from mnistlab.config import REPO_ROOT


def test_training_stack_is_imported_only_for_its_backend() -> None:
    code = ("import sys, mnistlab.run.training, mnistlab.backends.lightning.trainer, "
            "mnistlab.backends.keras.trainer; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]"
