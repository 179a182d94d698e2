"""Start a Hydra app so that bad input is reported as one line, not a traceback."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.config import CONF_DIR
from mnistlab.errors import USER_ERRORS, fail, one_line, show_tracebacks
from mnistlab.run.configs import register_configs
from mnistlab.run.rundir import expand_resume


def run_app(task: Callable[[DictConfig], Any], config_name: str, *,
            discard_on_error: bool = False) -> None:
    """Run `task` as a Hydra app; user errors exit 2 with one line (HYDRA_FULL_ERROR=1: trace).

    `discard_on_error`: a task whose own output folder (Hydra's run dir) holds only its log until
    it succeeds; a user error removes that folder, so bad input leaves nothing behind.
    """
    show_tracebacks(os.environ.get("HYDRA_FULL_ERROR") == "1")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    register_configs()
    if discard_on_error:
        task = _discarding_output(task)
    app = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)
    try:
        sys.argv[1:] = expand_resume(sys.argv[1:])
        app()
    except USER_ERRORS as e:
        fail(e)


def _discarding_output(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A user error inside the job is one line there (not Hydra's "Error executing job" and a
    traceback); a single run's folder goes with it, a sweep's job keeps its log and the sweep
    goes on."""
    @functools.wraps(task)
    def run(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except USER_ERRORS as e:
            hydra_cfg = HydraConfig.get()
            if hydra_cfg.mode != RunMode.RUN:
                sys.stderr.write(f"error: {hydra_cfg.job.name} #{hydra_cfg.job.num}: "
                                 f"{one_line(e)}\n")
                return None
            folder = Path(hydra_cfg.runtime.output_dir).resolve()
            root = logging.getLogger()
            for handler in root.handlers[:]:  # the job's log file, in that folder
                if (isinstance(handler, logging.FileHandler)
                        and Path(handler.baseFilename).resolve().is_relative_to(folder)):
                    root.removeHandler(handler)
                    handler.close()
            shutil.rmtree(folder, ignore_errors=True)
            fail(e)

    return run
