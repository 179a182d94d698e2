"""Optuna sweeps that survive an interruption: a re-run with the same storage and study name
continues the study up to `n_trials` complete trials, and every trial's job directory is
`<sweep dir>/<trial number>`, so a re-run never puts a new trial into an old trial's directory.

Optuna is imported only when a sweep starts: Hydra imports this module (through
`hydra_plugins.mnistlab_optuna`) on every start, `--help` included.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class NanAsFailure:
    """Wraps the launcher: a job that returns NaN (a failed run) reaches the plugin as None, which
    it tells Optuna as FAIL. The plugin passes NaN on to `study.tell` as a value, which raises
    and ends the whole sweep."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for num, ret in enumerate(returns, initial_job_idx):
            if ret.status == JobStatus.COMPLETED and _is_nan(ret.return_value):
                log.warning(f"job {num} failed (it returned NaN): its trial is told FAIL")
                ret.return_value = None
        return returns


class ResumableOptunaSweeper(OptunaSweeper):
    """hydra-optuna-sweeper's sweeper, resumable. Before the plugin's own `sweep` runs, it loads
    the study, marks the trials an interrupted run left RUNNING as FAIL, and sets the plugin's
    state (hydra-optuna-sweeper 1.3's `OptunaSweeperImpl`, in `self.sweeper`) so that its loop
    runs only the missing trials and numbers each job by its trial."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.sweeper.launcher = NanAsFailure(self.sweeper.launcher)

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        impl = self.sweeper
        Path(impl.sweep_dir).mkdir(parents=True, exist_ok=True)  # SQLite needs the folder now
        study = optuna.create_study(study_name=impl.study_name, storage=impl.storage,
                                    directions=impl._get_directions(), load_if_exists=True)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.warning(f"trial {trial.number} was interrupted: marked FAIL")
            study.tell(trial.number, state=TrialState.FAIL)
        n_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        n_existing = len(study.trials)
        impl.n_trials = max(impl.n_trials - n_done, 0)
        # The plugin asks one trial per job in order and adds each batch's size to job_idx, so
        # starting it at the next trial's number makes every job number its trial's number.
        impl.job_idx = n_existing
        sampler_cfg = impl.config.hydra.sweeper.sampler
        if n_existing and sampler_cfg.get("seed") is not None:
            # Deviation from the plugin: its seeded sampler would replay the first run's random
            # draws and repeat its trials; an offset seed keeps a resumed sweep reproducible.
            impl.sampler = instantiate(sampler_cfg, seed=sampler_cfg.seed + n_existing)
        log.info(f"Study {impl.study_name}: {n_done} trials complete, {impl.n_trials} to run")
        super().sweep(arguments)
