"""Heavy libraries are imported only when needed (each backend's training stack when it trains,
the report's when a sweep ends): a fresh interpreter shows it."""

from __future__ import annotations

import json
import subprocess
import sys

from mnistlab.config import REPO_ROOT


def loaded_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    code += ("\nimport json, sys\n"
             f"print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_training_stack_is_imported_only_for_its_backend() -> None:
    code = ("import mnistlab.run.training, mnistlab.backends.lightning.trainer, "
            "mnistlab.backends.keras.trainer")
    assert loaded_by(code, ("tensorflow", "keras")) == []


def test_hydra_callbacks_import_neither_matplotlib_nor_scipy() -> None:
    """Hydra builds every callback of conf/config.yaml at each start of train.py, also of a single
    run: the report's statistics and figures wait for a sweep's end."""
    code = ("from hydra.utils import get_class\n"
            "from omegaconf import OmegaConf\n"
            "callbacks = OmegaConf.load('conf/config.yaml').hydra.callbacks\n"
            "assert len(callbacks) >= 2, callbacks\n"
            "for callback in callbacks.values():\n"
            "    get_class(callback._target_)")
    assert loaded_by(code, ("matplotlib", "scipy")) == []
