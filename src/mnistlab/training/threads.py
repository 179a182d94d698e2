"""How many CPU threads a run uses: `trainer.threads`, else the machine's cores shared between
the jobs a launcher runs at once (`hydra/launcher=parallel`: n_jobs of them), so that k small
jobs at once with cores/k threads each keep every core busy without oversubscribing it."""

from __future__ import annotations

import os

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf


def cores() -> int:
    """The cores this process may run on (a Slurm or taskset allocation, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_threads(trainer: DictConfig) -> int:
    if trainer.threads is not None:
        return int(trainer.threads)
    jobs = 1
    if HydraConfig.initialized():
        jobs = int(OmegaConf.select(HydraConfig.get(), "launcher.n_jobs", default=1) or 1)
    if jobs <= 0:  # joblib's -1: as many jobs as cores
        jobs = cores()
    return max(1, cores() // jobs)


def limit_blas(threads: int) -> None:
    """NumPy's and SciPy's BLAS and OpenMP pools (threadpoolctl, which scikit-learn brings)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
