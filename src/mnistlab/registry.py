"""Name -> builder tables: the one place each backend looks up an option of a config group.

Each kind (optimizer, scheduler, aug, model) has one registry per backend, filled by decorators
next to the builders. A name no builder is registered for is a user error naming the group and
the choices, never a silent no-op. The config groups (conf/<group>/*.yaml) are the user-facing
list; tests check that both backends register exactly those names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from mnistlab.errors import ConfigError, unknown_option

B = TypeVar("B")  # a builder, or the object itself (a backend)


class Registry(Generic[B]):
    """A dict from a config option's `name` to the builder that turns its config into an object."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._builders: dict[str, B] = {}

    def register(self, name: str) -> Callable[[B], B]:
        def add(builder: B) -> B:
            if name in self._builders:
                raise ValueError(f"{self.group} option {name!r} is registered twice")
            self._builders[name] = builder
            return builder

        return add

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._builders))

    def __getitem__(self, name: str) -> B:
        try:
            return self._builders[name]
        except KeyError:
            raise ConfigError(unknown_option(self.group, name, self.names())) from None

