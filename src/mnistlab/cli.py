"""Start a Hydra app so that bad input is reported as one line, not a traceback."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import hydra
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from mnistlab.config import CONF_DIR
from mnistlab.errors import MnistlabError
from mnistlab.rundir import expand_resume

USER_ERRORS = (MnistlabError, HydraException, OmegaConfBaseException)
_traceback = False  # HYDRA_FULL_ERROR=1 as the user set it, before run_app claims the variable


def one_line(error: BaseException) -> str:
    """Boil Hydra's and OmegaConf's multi-line messages down to the part a user acts on."""
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return (f"unknown option '{option}' for {group}; choose one of: "
                f"{', '.join(sorted(error.options))}")
    parts = [str(error).split("\n")[0]]
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        parts.append(getattr(cause, "msg", str(cause)).split("\n")[0])
    text = ": ".join(p.strip().rstrip(".") for p in parts if p.strip())
    return re.sub(r"\s+", " ", text)


def fail(error: BaseException) -> NoReturn:
    """Exit with one line on stderr; SystemExit also passes through Hydra's job runner untouched."""
    if _traceback:
        raise error
    sys.stderr.write(f"error: {one_line(error)}\n")
    raise SystemExit(2)


def run_app(task: Callable[[DictConfig], Any], config_name: str) -> None:
    """Run `task` as a Hydra app; user errors exit 2 with one line (HYDRA_FULL_ERROR=1: trace)."""
    global _traceback
    _traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    app = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")(task)
    try:
        sys.argv[1:] = expand_resume(sys.argv[1:])
        app()
    except USER_ERRORS as e:
        fail(e)
