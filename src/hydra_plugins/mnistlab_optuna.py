"""Registers mnistlab's Optuna sweeper with Hydra, which instantiates a sweeper only from a class
defined in the `hydra_plugins` package and refuses any other `_target_`; importing it also puts
its schema in Hydra's config store as `hydra/sweeper: optuna`."""

from mnistlab.sweepers import optuna


class OptunaSweeper(optuna.OptunaSweeper):
    """`mnistlab.sweepers.optuna.OptunaSweeper` under a name Hydra accepts."""
