"""Start a Hydra app so that bad input is reported as one line, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig

from mnistlab.config import CONF_DIR
from mnistlab.errors import USER_ERRORS, fail, show_tracebacks
from mnistlab.run.configs import register_configs
from mnistlab.run.rundir import expand_resume


def run_app(task: Callable[[DictConfig], Any], config_name: str) -> None:
    """Run `task` as a Hydra app; user errors exit 2 with one line (HYDRA_FULL_ERROR=1: trace)."""
    show_tracebacks(os.environ.get("HYDRA_FULL_ERROR") == "1")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    register_configs()
    app = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)
    try:
        sys.argv[1:] = expand_resume(sys.argv[1:])
        app()
    except USER_ERRORS as e:
        fail(e)
