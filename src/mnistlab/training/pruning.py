"""A training job's side of an Optuna search with pruning: after every epoch it reports its
validation accuracy to its trial and stops when the study's pruner says so.

The job reaches its trial through the study's storage, from its own process, with nothing but
what the sweeper put in its config (`optuna.storage`, `optuna.study`, `optuna.trial`): so
pruning works under every launcher (in-process, joblib, submitit, Slurm), as long as the storage
is one they all reach (SQLite or a journal file on a shared file system, or a database server).
The pruner itself is the study's: the sweeper records its spec in the study's user attributes
(`PRUNER_ATTR`) and the job builds the same one (`build_pruner`).

Storages and pruners are built here, below both the sweeper and the job, from plain specs:
a storage is a database URL or `journal:<file>` (Optuna's journal file storage).
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from mnistlab.errors import ConfigError

log = logging.getLogger(__name__)
PRUNER_ATTR = "mnistlab.pruner"  # the study's user attribute holding the pruner's spec
JOURNAL = "journal:"


class RunPruned(BaseException):
    """Raised at the end of the epoch after which the pruner stopped the trial; a
    BaseException, like RunInterrupted, so that no framework's `except Exception` swallows it."""

    def __init__(self, epoch: int, trial: int) -> None:
        self.epoch, self.trial = epoch, trial
        super().__init__(f"pruned by the Optuna study after epoch {epoch} (trial {trial})")


def open_storage(spec: str) -> Any:
    """A storage from its spec: `journal:<file>` (JournalStorage over a file) or any URL
    Optuna's RDB storage takes (sqlite:///..., postgresql://...)."""
    import optuna

    if spec.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(spec.removeprefix(JOURNAL)))
    return optuna.storages.RDBStorage(spec)


# each pruner's options, as Optuna names them
PRUNER_OPTIONS = {
    "none": (),
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps"),
    "successive_halving": ("min_resource", "reduction_factor"),
    "hyperband": ("min_resource", "reduction_factor"),
}


def build_pruner(spec: dict[str, Any], max_epochs: int) -> Any:
    """The pruner of `spec` ({"name": ..., and its options}): the trials' epochs are its steps,
    and `max_epochs` hyperband's largest resource. ConfigError, one line, for an unknown name
    or an option the pruner does not take."""
    import optuna

    name = spec.get("name", "none")
    if name not in PRUNER_OPTIONS:
        raise ConfigError(f"unknown option '{name}' for hydra.sweeper.pruner.name; choose one "
                          f"of: {', '.join(PRUNER_OPTIONS)}")
    options = {k: v for k, v in spec.items() if k != "name" and v is not None}
    for key in options:
        if key not in PRUNER_OPTIONS[name]:
            takes = ", ".join(PRUNER_OPTIONS[name]) or "no options"
            raise ConfigError(f"hydra.sweeper.pruner.{key} is not an option of the {name} "
                              f"pruner, which takes {takes}")
    pruners = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
               "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
               "hyperband": lambda **kw: optuna.pruners.HyperbandPruner(
                   **{"max_resource": max_epochs, **kw})}
    return pruners[name](**options)


class TrialReporter:
    """One job's trial: `epoch` reports the epoch's validation accuracy and raises RunPruned
    when the pruner stops the trial (told PRUNED first, so the sweeper and a resumed search
    see it as pruned, with the last reported value)."""

    def __init__(self, storage: str, study_name: str, number: int, max_epochs: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
        study.pruner = build_pruner(study.user_attrs.get(PRUNER_ATTR, {"name": "none"}),
                                    max_epochs)
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(  # no public lookup
            study._study_id, number)
        self.study, self.number = study, number
        self.trial = optuna.trial.Trial(study, trial_id)

    def epoch(self, epoch: int, val_acc: float) -> None:
        self.trial.report(val_acc, step=epoch)
        if self.trial.should_prune():
            from optuna.trial import TrialState

            self.study.tell(self.number, state=TrialState.PRUNED)
            log.info("trial %d pruned after epoch %d (val_acc %.4f)", self.number, epoch,
                     val_acc)
            raise RunPruned(epoch, self.number)


def trial_reporter(cfg: DictConfig) -> TrialReporter | None:
    """The job's reporter when a pruning search started it (optuna.trial is set), else None."""
    node = cfg.get("optuna")
    if node is None or node.get("trial") is None:
        return None
    return TrialReporter(node.storage, node.study, int(node.trial), cfg.trainer.max_epochs)
