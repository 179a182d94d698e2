"""The yardstick of `mnistlab.bench`: each backend's recipe as a bare loop of its own framework.

`python -m mnistlab.bench.bare OUT.json -- OVERRIDE...` composes the config from the overrides a
`train.py` run gets, so the recipe, batch sizes and data split are the same, and trains it with
the backend's own component builder (network, augmentation, optimizer, schedule, L2 penalty), the
one its trainer uses, and nothing else:
no Trainer, callbacks, metric objects, checkpoints or loggers. Each epoch is timed as mnistlab's
epoch_seconds: from its start (before its shuffled order is made) through its training batches and
one validation pass at data.eval_batch_size. After training, one more validation pass is timed
alone (warm: no tracing or first-call cost). Each backend runs in its own process, so that
TensorFlow loads only for keras and torch only for lightning.

The recipe's trainer settings that change speed are applied as mnistlab applies them: CPU threads,
determinism, device, precision; and the same random streams per epoch (mnistlab.training.seeds), so
a bare run learns what the mnistlab run learns.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from mnistlab.backends import get_backend
from mnistlab.data import load_splits
from mnistlab.errors import ConfigError
from mnistlab.run.configs import compose_config
from mnistlab.run.training import sample_limits
from mnistlab.training.allocator import keep_freed_memory


def run(overrides: list[str]) -> dict[str, object]:
    """The bare run of `overrides` (a train.py command line): its timings and what it trained on."""
    keep_freed_memory()  # as a train.py process does
    cfg = compose_config(overrides)
    if cfg.trainer.devices not in ("auto", 1):
        raise ConfigError("the bench's bare loops train on one device: use trainer.devices=auto")
    data = load_splits(cfg.data).limited(*sample_limits(cfg))
    timings = get_backend(cfg.backend.name).bare_loop(cfg, data)
    return {**asdict(timings), "train_samples": len(data.y_train), "val_samples": len(data.y_val),
            "batch_size": cfg.data.batch_size, "eval_batch_size": cfg.data.eval_batch_size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.bench.bare", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the JSON result")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(run(args.overrides), indent=2) + "\n")


if __name__ == "__main__":
    main()
