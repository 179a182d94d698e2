"""Which process of a multi-process run this is. Every process trains; only rank 0 writes the
run's files (.hydra/, metrics.csv, summary.json, checkpoints, W&B)."""

from __future__ import annotations

import os


def global_rank() -> int:
    """RANK (torchrun), SLURM_PROCID (a Slurm task), LOCAL_RANK (Lightning's own launcher on one
    node), else 0: the environments Lightning reads its rank from."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0
