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

IN_ORDER = (LIGHTNING, KERAS)  # the order the bench runs them in and provenance lists them
BACKENDS: Registry[Backend] = Registry("backend")
for _backend in IN_ORDER:
    BACKENDS.register(_backend.name)(_backend)


def get_backend(name: str) -> Backend:
    """The backend of `backend.name`; an unknown name is one line naming the choices."""
    return BACKENDS[name]


def backend_names() -> tuple[str, ...]:
    return tuple(b.name for b in IN_ORDER)


def framework_packages() -> tuple[str, ...]:
    """The distributions whose versions a run records (provenance), every backend's."""
    return tuple(p for b in IN_ORDER for p in b.packages)


def store_schemas() -> None:
    """Each backend's option schema where conf/backend/<name>.yaml finds it."""
    cs = ConfigStore.instance()
    for name in BACKENDS.names():
        cs.store(name=f"backend_{name}_schema", node=BACKENDS[name].schema)
