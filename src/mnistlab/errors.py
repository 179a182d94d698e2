"""Errors that a user can fix, their shared messages, and how the CLI prints them: one line,
without a traceback (`HYDRA_FULL_ERROR=1` brings the traceback back)."""

from __future__ import annotations

import errno
import re
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException


class MnistlabError(Exception):
    """Bad input (config, data files) or a run that cannot go on; the message says what to do."""


class ConfigError(MnistlabError):
    """A config value outside what the recipe allows."""


class DataError(MnistlabError):
    """A data file that is missing, corrupt or cannot be downloaded."""


class NonFiniteLossError(MnistlabError):
    """Training diverged: continuing would only waste time on NaNs."""

    @classmethod
    def at(cls, loss: float, epoch: int, batch: int | None = None) -> NonFiniteLossError:
        """The one wording, for a batch (both backends' step checks) or a finished epoch."""
        where = (f"became {loss} at epoch {epoch}, batch {batch}" if batch is not None
                 else f"is {loss} after epoch {epoch}")
        return cls(f"training loss {where}; the run diverged, try a smaller optimizer.lr")


class DiskFullError(MnistlabError):
    """A run's file could not be written for lack of space; what was written before is intact."""


def disk_full(path: Path, error: BaseException) -> DiskFullError | None:
    """The one wording for a full disk (or quota) while writing `path`, also where a library
    wrapped the OSError in another exception; None for other errors."""
    cause: BaseException | None = error
    while cause is not None and not (isinstance(cause, OSError)
                                     and cause.errno in (errno.ENOSPC, errno.EDQUOT)):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free there"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"no space left to write {path} ({free}); the last finished epoch is "
                         "kept: free some space, then resume")


def unreadable_checkpoint(path: Path, error: BaseException) -> DataError:
    """A checkpoint that a resume cannot load, whichever backend wrote it."""
    return DataError(f"cannot resume from checkpoint {path}: it cannot be read "
                     f"({type(error).__name__}); delete it to train this run from the start")


def unknown_option(group: str, name: object, choices: tuple[str, ...]) -> str:
    """The one wording for an unknown option: registries and Hydra's missing config alike."""
    return f"unknown option '{name}' for {group}; choose one of: {', '.join(sorted(choices))}"


USER_ERRORS = (MnistlabError, HydraException, OmegaConfBaseException)
_tracebacks = False  # HYDRA_FULL_ERROR=1 as the user set it, before run_app claims the variable


def show_tracebacks(on: bool) -> None:
    global _tracebacks
    _tracebacks = on


def one_line(error: BaseException) -> str:
    """Boil Hydra's and OmegaConf's multi-line messages down to the part a user acts on."""
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return unknown_option(group, option, tuple(error.options))
    if isinstance(error, OverrideParseException):
        key, _, value = error.override.partition("=")
        reason = str(error).split("\n")[0]
        if reason.endswith(error.override):  # the lexer's message only repeats the override
            reason = "a character the override grammar does not allow there"
        return (f"cannot read the override {error.override!r} ({reason}); a value with "
                "spaces, quotes or any of ()[]{},=: goes in quotes inside the shell's quotes: "
                f"'{key}=\"{value}\"'")
    parts = [str(error).split("\n")[0]]
    if parts[0].startswith("Ambiguous value for argument"):  # a comma outside -m
        key, _, value = parts[0].split("'", 1)[1].rstrip("'").partition("=")
        parts[0] += (f"; for one string quote it: '{key}=\"{value}\"', for a list: "
                     f"{key}=[...], for a sweep over the values: -m")
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException):
        parts.append(getattr(cause, "msg", str(cause)).split("\n")[0])
    text = ": ".join(p.strip().rstrip(".") for p in parts if p.strip())
    return re.sub(r"\s+", " ", text)


def fail(error: BaseException) -> NoReturn:
    """Exit with one line on stderr; SystemExit also passes through Hydra's job runner untouched."""
    if _tracebacks:
        raise error
    sys.stderr.write(f"error: {one_line(error)}\n")
    raise SystemExit(2)
