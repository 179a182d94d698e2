"""Where the schemas meet Hydra: the ConfigStore entries that conf/'s YAML files start from, and
composing a config outside a Hydra app (the bench's bare loops, tests)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from mnistlab.backends import store_schemas
from mnistlab.config import CONF_DIR, REPO_ROOT
from mnistlab.config.schema import SCHEMAS, Config


def register_configs() -> None:
    """Put the schemas where the YAML files' defaults lists find them (`/<group>_<name>_schema`).

    They are stored at the root, not in a group, so that `--help` does not list them as options.
    """
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            cs.store(name=f"{group}_{name}_schema", node=node)
    store_schemas()
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))


def compose_config(overrides: list[str], config_name: str = "config") -> DictConfig:
    """The config `python train.py OVERRIDES` would run, composed through Hydra's compose API."""
    register_configs()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides)
