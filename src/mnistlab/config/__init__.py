"""The run's configuration: where the YAML lives (conf/, and sweeps/ for multiruns), the
schemas Hydra checks it against (`schema`), and the value checks run before any data is read
(`checks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
CONF_DIR = REPO_ROOT / "conf"
SWEEPS_GROUP = "sweeps"  # the multiruns in the top-level sweeps/ (hydra_plugins.mnistlab_sweeps)


def group_options(group: str) -> tuple[str, ...]:
    """The options of a config group as Hydra offers them: the YAML files in conf/<group>/."""
    return tuple(sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")))


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"optimizer.lr": 0.001, ...}; lists stay whole values."""
    if not isinstance(cfg, dict) or not cfg:
        return {prefix: cfg} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
