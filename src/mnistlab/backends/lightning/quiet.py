"""What Lightning and torch print on every run that tells a mnistlab user nothing, filtered at
its source and nothing else: their real warnings still show.

- Lightning's advertising tip for LitLogger, logged at every Trainer start;
- its hint that `srun` exists but is not used, on any machine with Slurm installed, also where
  mnistlab starts the Slurm jobs itself (hydra/launcher=slurm runs each job under srun);
- pytorch_lightning's own use of a torch pytree API that torch deprecated (not ours to fix).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

RANK_ZERO_LOGGER = "pytorch_lightning.utilities.rank_zero"


class _DropTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    tip = _DropTip()
    logger = logging.getLogger(RANK_ZERO_LOGGER)
    logger.addFilter(tip)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"The `srun` command is available on your system but is not used")
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                module=r"pytorch_lightning\.utilities\._pytree")
            yield
    finally:
        logger.removeFilter(tip)
