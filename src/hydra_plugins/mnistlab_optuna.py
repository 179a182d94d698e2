"""Registers mnistlab's resumable Optuna sweeper with Hydra, which instantiates a sweeper only
from a class defined in the `hydra_plugins` package and refuses any other `_target_`."""

from mnistlab.sweepers import optuna


class ResumableOptunaSweeper(optuna.ResumableOptunaSweeper):
    """`mnistlab.sweepers.optuna.ResumableOptunaSweeper` under a name Hydra accepts."""
