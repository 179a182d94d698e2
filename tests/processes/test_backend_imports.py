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


def test_hydra_callbacks_import_neither_matplotlib_nor_scipy() -> None:
    """Hydra builds every callback of conf/config.yaml at each start of train.py, also of a single
    run: the report's plotting and statistics (1.2-1.5 s to import) wait for a sweep's end."""
    code = ("import sys\n"
            "from hydra.utils import get_class\n"
            "from omegaconf import OmegaConf\n"
            "callbacks = OmegaConf.load('conf/config.yaml').hydra.callbacks\n"
            "assert len(callbacks) >= 2, callbacks\n"
            "for callback in callbacks.values():\n"
            "    get_class(callback._target_)\n"
            "print(sorted(m for m in ('matplotlib', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
