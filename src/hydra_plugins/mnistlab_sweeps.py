"""Hydra finds the `sweeps` config group in the repository's top-level sweeps/ folder.

sweeps/ sits beside conf/, not inside it, so that the multirun definitions read as what they are.
Hydra's own `file://` search path would have to name the folder's parent, the repository root,
and would then offer every folder there (docs, tests, outputs) as a config group; this source
answers for the `sweeps` group alone, and the search-path plugin adds it to every mnistlab app.
"""

from __future__ import annotations

from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult
from hydra.plugins.search_path_plugin import SearchPathPlugin

from mnistlab.config import REPO_ROOT, SWEEPS_GROUP


def _in_group(config_path: str) -> bool:
    return config_path in ("", SWEEPS_GROUP) or config_path.startswith(f"{SWEEPS_GROUP}/")


class SweepsConfigSource(FileConfigSource):
    """The repository root as a config source that shows only its sweeps/ folder."""

    @staticmethod
    def scheme() -> str:
        return "mnistlab-sweeps"

    def load_config(self, config_path: str) -> ConfigResult:
        if not _in_group(config_path):
            raise ConfigLoadError(f"Config not found : {config_path}")
        return super().load_config(config_path)

    def is_group(self, config_path: str) -> bool:
        return _in_group(config_path) and super().is_group(config_path)

    def is_config(self, config_path: str) -> bool:
        return _in_group(config_path) and config_path != "" and super().is_config(config_path)

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        if config_path == "":
            return [SWEEPS_GROUP] if results_filter in (None, ObjectType.GROUP) else []
        return super().list(config_path, results_filter) if _in_group(config_path) else []


class SweepsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="mnistlab-sweeps",
                           path=f"{SweepsConfigSource.scheme()}://{REPO_ROOT}")
