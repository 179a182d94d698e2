"""The training backends, a package each: `lightning/` (PyTorch Lightning) and `keras/` (Keras 3).

Each package's `BACKEND` is its `mnistlab.training.backend.Backend`; this registry is the only
place that lists them, and nothing outside this package names a backend.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from mnistlab.backends.keras import BACKEND as KERAS
from mnistlab.backends.lightning import BACKEND as LIGHTNING
from mnistlab.registry import Registry
from mnistlab.training.backend import Backend

BACKENDS: Registry[Backend] = Registry("backend")
for _backend in (LIGHTNING, KERAS):
    BACKENDS.register(_backend.name)(_backend)


def get_backend(name: str) -> Backend:
    """The backend of `backend.name`; an unknown name is one line naming the choices."""
    return BACKENDS[name]


def store_schemas() -> None:
    """Each backend's option schema where conf/backend/<name>.yaml finds it."""
    cs = ConfigStore.instance()
    for name in BACKENDS.names():
        cs.store(name=f"backend_{name}_schema", node=BACKENDS[name].schema)
