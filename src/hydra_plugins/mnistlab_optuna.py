"""Registers mnistlab's resumable Optuna sweeper with Hydra, which instantiates a sweeper only
from a class defined in the `hydra_plugins` package and refuses any other `_target_`."""

from mnistlab import optuna_sweeper


class ResumableOptunaSweeper(optuna_sweeper.ResumableOptunaSweeper):
    """`mnistlab.optuna_sweeper.ResumableOptunaSweeper` under a name Hydra accepts."""
