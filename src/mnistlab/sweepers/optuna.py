"""mnistlab's Hydra sweeper on current Optuna: searches, resumes and prunes.

hydra-optuna-sweeper (the newest, 1.3) requires optuna<3 and cannot prune; this sweeper keeps its
search-space syntax (`interval`, `tag(log, interval(...))`, `choice`, `range`: Hydra's own sweep
grammar) and adds what it lacks:

- **Resume.** A re-run with the same storage and study name continues the study up to
  `n_trials` finished trials (complete or pruned); trials an interrupted run left RUNNING are
  failed first, and every trial's job directory is `<sweep dir>/<trial number>`, so a re-run
  never puts a new trial into an old trial's directory, nor trains a finished one again.
- **Batches.** Trials are asked `n_jobs` at a time and launched together through whatever
  launcher is chosen (basic, joblib, submitit, Slurm); each result is told as its batch returns.
- **Pruning.** With `pruner.name` other than none, each job gets its trial's storage, study and
  number (`optuna.*` in its config) and reports its validation accuracy after every epoch from
  its own process (mnistlab.training.pruning); the pruner's spec is stored in the study, so the
  job builds the same pruner. A pruned job tells its trial PRUNED itself.
- **Storages.** A database URL (default: SQLite in the sweep directory), `journal` (Optuna's
  journal file in the sweep directory, for a shared file system), or null (in memory: no resume,
  no pruning).

Optuna is imported only when a sweep starts: Hydra imports this module (through
`hydra_plugins.mnistlab_optuna`) on every start, `--help` included.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from mnistlab.atomic import write_atomically
from mnistlab.errors import ConfigError
from mnistlab.training.pruning import JOURNAL, PRUNER_ATTR, build_pruner, open_storage

log = logging.getLogger(__name__)
SAMPLERS = ("tpe", "random", "cmaes", "grid")
DIRECTIONS = ("maximize", "minimize")


@dataclass
class SamplerConfig:
    name: str = "tpe"  # tpe, random, cmaes, grid
    seed: int | None = None


@dataclass
class PrunerConfig:
    """The pruner and its options; null options keep Optuna's defaults, and an option the
    chosen pruner does not take is refused (mnistlab.training.pruning.build_pruner)."""

    name: str = "none"  # none, median, successive_halving, hyperband
    n_startup_trials: int | None = None  # median: trials that finish before any is pruned
    n_warmup_steps: int | None = None  # median: epochs a trial trains before it can be pruned
    interval_steps: int | None = None  # median
    min_resource: int | None = None  # successive_halving, hyperband: epochs before a rung
    reduction_factor: int | None = None  # successive_halving, hyperband


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.mnistlab_optuna.OptunaSweeper"
    direction: str = "maximize"  # the task returns the final validation accuracy
    study_name: str = "mnistlab"  # fixed, so that a re-run loads the study in its storage
    storage: str | None = None  # a database URL, journal, or null (in memory)
    n_trials: int = 20  # finished trials (complete or pruned), earlier runs' included
    n_jobs: int = 1  # trials asked at a time, launched together
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    params: dict[str, str] = field(default_factory=dict)  # key: its search space


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf,
                             provider="mnistlab")


def distribution(override: Override) -> Any:
    """An Optuna distribution from a Hydra sweep override; a fixed value as its string.
    `range(a, b[, step])` keeps Hydra's meaning: b is excluded."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(
            transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(start, stop - step, step=step)
        return IntDistribution(int(start), int(stop) - int(step), step=int(step))
    if isinstance(value, IntervalSweep):
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise ConfigError(f"{override.input_line}: not a search space the Optuna sweeper takes "
                      "(choice, range, interval, tag(log, interval))")


def storage_spec(storage: str | None, sweep_dir: Path) -> str | None:
    """The storage's spec as jobs get it: journal -> journal:<sweep dir>/optuna.journal."""
    if storage is None:
        return None
    if storage == "journal":
        return f"{JOURNAL}{sweep_dir.resolve() / 'optuna.journal'}"
    return storage


def quoted(value: str) -> str:
    """A string as one Hydra override value (URLs and paths hold ':' and '/')."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class OptunaSweeper(Sweeper):
    def __init__(self, direction: str, study_name: str, storage: str | None, n_trials: int,
                 n_jobs: int, sampler: DictConfig, pruner: DictConfig,
                 params: DictConfig | None) -> None:
        self.direction, self.study_name, self.storage = direction, study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.sampler_cfg = sampler
        self.pruner_spec = {k: v for k, v in OmegaConf.to_container(pruner).items()
                            if v is not None}
        self.params = OmegaConf.to_container(params) if params else {}
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.max_epochs = 1  # the successive-halving family's largest resource, from the config

    def check(self) -> None:
        """The settings, one line each (here, not in __init__: Hydra's instantiate would wrap
        the error in its own)."""
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={self.direction} is not allowed; "
                              f"expected one of {', '.join(DIRECTIONS)}")
        for key, n in (("n_trials", self.n_trials), ("n_jobs", self.n_jobs)):
            if n < 1:
                raise ConfigError(f"hydra.sweeper.{key}={n} is not allowed; expected >= 1")
        if self.sampler_cfg.name not in SAMPLERS:
            raise ConfigError(f"unknown option '{self.sampler_cfg.name}' for "
                              f"hydra.sweeper.sampler.name; choose one of: {', '.join(SAMPLERS)}")

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.check()
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)
        self.max_epochs = int(config.trainer.max_epochs) if "trainer" in config else 1

    def search_space(self, arguments: list[str]) -> tuple[dict[str, Any], list[str]]:
        """The distributions of `params` and the command line's sweeps (the command line wins),
        and the fixed overrides every job gets."""
        parser = OverridesParser.create()
        given = [f"{k}={v}" for k, v in self.params.items()]
        space: dict[str, Any] = {}
        fixed: dict[str, str] = {}
        for override in parser.parse_overrides(given) + parser.parse_overrides(arguments):
            key = override.get_key_element()
            found = distribution(override)
            target, other = (fixed, space) if isinstance(found, str) else (space, fixed)
            other.pop(key, None)
            target[key] = found
        return space, [f"{k}={v}" for k, v in fixed.items()]

    def sampler(self, space: dict[str, Any], n_existing: int) -> Any:
        import optuna

        cfg = self.sampler_cfg
        # a resumed seeded sampler would replay the first run's draws and repeat its trials; an
        # offset seed keeps a resumed search reproducible without repeating it
        seed = None if cfg.seed is None else cfg.seed + n_existing
        if cfg.name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if cfg.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if cfg.name == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=seed)
        grid = {}
        for key, dist in space.items():
            if not isinstance(dist, optuna.distributions.CategoricalDistribution):
                raise ConfigError(f"hydra.sweeper.sampler.name=grid needs choice(...) for every "
                                  f"searched key; {key} is {type(dist).__name__}")
            grid[key] = list(dist.choices)
        return optuna.samplers.GridSampler(grid, seed=seed)

    def sweep(self, arguments: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        assert self.config is not None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)  # SQLite and the journal need it now
        space, fixed = self.search_space(arguments)
        spec = storage_spec(self.storage, sweep_dir)
        pruning = self.pruner_spec.get("name", "none") != "none"
        if pruning and spec is None:
            raise ConfigError("hydra.sweeper.pruner needs a storage the jobs can reach; "
                              "hydra.sweeper.storage=null keeps the study in memory")
        build_pruner(self.pruner_spec, self.max_epochs)  # a bad option: one line, now
        study = optuna.create_study(study_name=self.study_name, direction=self.direction,
                                    storage=open_storage(spec) if spec else None,
                                    load_if_exists=True)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            log.warning("trial %d was interrupted: marked FAIL", trial.number)
            study.tell(trial.number, state=TrialState.FAIL)
        study.set_user_attr(PRUNER_ATTR, self.pruner_spec)
        finished = (TrialState.COMPLETE, TrialState.PRUNED)
        n_done = len(study.get_trials(deepcopy=False, states=finished))
        study.sampler = self.sampler(space, len(study.trials))
        log.info("Study %s: %d trials finished, %d to run", self.study_name, n_done,
                 max(self.n_trials - n_done, 0))
        while n_done < self.n_trials:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - n_done))]
            jobs = [[*fixed, *(f"{k}={v}" for k, v in trial.params.items()),
                     *(self.trial_overrides(spec, trial.number) if pruning else [])]
                    for trial in batch]
            # trials are asked one after another, so a batch's numbers are consecutive and
            # each job's number (its directory) is its trial's number
            returns = self.launcher.launch(jobs, initial_job_idx=batch[0].number)
            exhausted = False
            for trial, ret in zip(batch, returns, strict=True):
                try:
                    self.tell(study, trial, ret)
                except RuntimeError as e:
                    # GridSampler asks the study to stop once every point has run; outside
                    # study.optimize that raises, after the trial's state is stored
                    if "Study.stop" not in str(e):
                        raise
                    exhausted = True
            n_done = len(study.get_trials(deepcopy=False, states=finished))
            if exhausted:
                log.info("the grid has run every point: %d trials", n_done)
                break
        self.write_results(study, sweep_dir)

    def trial_overrides(self, spec: str | None, number: int) -> list[str]:
        assert spec is not None
        return [f"optuna.storage={quoted(spec)}", f"optuna.study={quoted(self.study_name)}",
                f"optuna.trial={number}"]

    @staticmethod
    def tell(study: Any, trial: Any, ret: JobReturn) -> None:
        """A job's value; a pruned job has told its trial already; a failed job (an exception,
        or NaN: the run failed) is told FAIL."""
        from optuna.trial import TrialState

        state = study._storage.get_trial(trial._trial_id).state  # no public lookup by trial
        if state.is_finished():
            log.info("trial %d: %s", trial.number, state.name.lower())
            return
        value = ret.return_value if ret.status == JobStatus.COMPLETED else None
        if isinstance(value, int | float) and math.isfinite(value):
            study.tell(trial, float(value))
        else:
            log.warning("job %d failed: its trial is told FAIL", trial.number)
            study.tell(trial, state=TrialState.FAIL)

    def write_results(self, study: Any, sweep_dir: Path) -> None:
        """optimization_results.yaml, as hydra-optuna-sweeper wrote it: the best parameters and
        value (absent when no trial completed)."""
        from optuna.trial import TrialState

        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            log.warning("no trial completed: no best parameters")
            return
        results = {"name": "optuna", "best_params": study.best_params,
                   "best_value": study.best_value}
        write_atomically(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(results))
        log.info("Best parameters: %s, value %s", study.best_params, study.best_value)

