"""Choose Keras' backend (backend.keras_backend) before Keras is first imported.

Keras reads KERAS_BACKEND once, at its first import, and cannot switch afterwards. So nothing in
mnistlab imports keras at module level except the modules of this folder that build the model,
which are imported only after `import_keras` has run (TensorFlow then loads only when a Keras run
trains).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from types import ModuleType

from mnistlab.errors import ConfigError


def import_keras(backend: str) -> ModuleType:
    """Return the keras module running on `backend`; ConfigError if it already runs on another."""
    keras = sys.modules.get("keras")
    if keras is None:
        if importlib.util.find_spec(backend) is None:
            raise ConfigError(f"backend.keras_backend={backend} needs the {backend} package, "
                              "which is not installed")
        os.environ["KERAS_BACKEND"] = backend
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines: not in logs
        if backend == "tensorflow":
            preload_triton()
        import keras
    current = keras.backend.backend()
    if current != backend:
        raise ConfigError(
            f"backend.keras_backend={backend}, but keras is already imported in this process "
            f"with the {current} backend; Keras cannot switch backends once imported, so run "
            f"with backend.keras_backend={current} or in a fresh process"
        )
    return keras


def preload_triton() -> None:
    """Load triton's native library before TensorFlow, if triton is installed.

    Loaded after TensorFlow, libtriton crashes the process (a segmentation fault: their bundled
    LLVMs clash), and torchvision, torchmetrics and Lightning import it. So a process that runs
    Keras and then Lightning (tests, a sweep over backend=keras,lightning) needs it loaded first.
    """
    if "tensorflow" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    with contextlib.suppress(Exception):  # a broken triton only matters to torch
        importlib.import_module("triton._C.libtriton")
