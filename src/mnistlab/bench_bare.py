"""The yardstick of `mnistlab.bench`: each backend's recipe as a bare loop of its own framework.

`python -m mnistlab.bench_bare OUT.json -- OVERRIDE...` composes the config from the overrides a
`train.py` run gets, so the recipe, batch sizes and data split are the same, and trains it with
mnistlab's builders (network, augmentation, optimizer, schedule, L2 penalty) and nothing else:
no Trainer, callbacks, metric objects, checkpoints or loggers. Each epoch is timed as mnistlab's
epoch_seconds: from its start (before its shuffled order is made) through its training batches and
one validation pass at data.eval_batch_size. After training, one more validation pass is timed
alone (warm: no tracing or first-call cost). Each backend runs in its own process, so that
TensorFlow loads only for keras and torch only for lightning.

The recipe's trainer settings that change speed are applied as mnistlab applies them: CPU threads,
determinism, device, precision; and the same random streams per epoch (mnistlab.seeds), so a bare
run learns what the mnistlab run learns.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mnistlab.backends import steps_per_epoch
from mnistlab.backends.keras_env import import_keras
from mnistlab.config import CONF_DIR
from mnistlab.data import Splits, load_splits
from mnistlab.errors import ConfigError
from mnistlab.run import sample_limits
from mnistlab.seeds import derive_seed, epoch_permutation
from mnistlab.threads import run_threads

if TYPE_CHECKING:
    import torch


@dataclass
class Timings:
    """Seconds per epoch (training and its validation pass, and training alone) and of the warm
    validation pass after training, and that pass's loss (with the L2 penalty, as mnistlab's) and
    accuracy, which show that the bare run learns what the mnistlab run learns."""

    epoch_seconds: list[float]
    train_seconds: list[float]
    eval_seconds: float
    val_loss: float
    val_acc: float


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def torch_device(accelerator: str) -> torch.device:
    """trainer.accelerator as Lightning picks it (auto: a CUDA GPU if there is one)."""
    import torch

    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cuda" if accelerator == "gpu" else accelerator)


def torch_loop(cfg: DictConfig, data: Splits) -> Timings:
    """Tensors on the device, one permutation per epoch, index slices, forward, backward, step."""
    import torch
    import torch.nn.functional as F

    from mnistlab.backends.torch_augment import AUGMENTATIONS
    from mnistlab.backends.torch_model import MODELS, l2_penalty
    from mnistlab.backends.torch_optim import OPTIMIZERS
    from mnistlab.backends.torch_schedule import SCHEDULES

    t, bs, ebs = cfg.trainer, cfg.data.batch_size, cfg.data.eval_batch_size
    weight = cfg.regularization.weight
    threads = run_threads(t)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    if t.deterministic:  # what Lightning's deterministic=True sets
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    device = torch_device(t.accelerator)
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(t.precision))
    scaler = torch.amp.GradScaler(device.type, enabled=half is torch.float16)
    torch.manual_seed(t.seed)
    net = MODELS[cfg.model.name](cfg.model, data.spec.image_shape,
                                 data.spec.num_classes).to(device)
    augment = AUGMENTATIONS[cfg.aug.name](cfg.aug)
    opt = OPTIMIZERS[cfg.optimizer.name](net.parameters(), cfg.optimizer)
    steps = steps_per_epoch(cfg, data)
    schedule = SCHEDULES[cfg.scheduler.name](opt, cfg.scheduler, steps, steps * t.max_epochs)
    x, y, xv, yv = (torch.from_numpy(a).to(device)
                    for a in (data.x_train, data.y_train, data.x_val, data.y_val))

    def forward(images: torch.Tensor, train: bool) -> torch.Tensor:
        images = images.unsqueeze(1).float().div_(255)
        return net(augment(images) if train else images)

    @torch.inference_mode()
    def validate() -> tuple[float, float]:
        """Validation loss (with the L2 penalty) and accuracy: one sync, at the end."""
        net.eval()
        loss = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for start in range(0, len(yv), ebs):
            labels = yv[start:start + ebs]
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                logits = forward(xv[start:start + ebs], train=False)
                loss += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
        return float(loss) / len(yv) + float(l2_penalty(net, weight)), float(correct) / len(yv)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    epoch_seconds, train_seconds = [], []
    for epoch in range(t.max_epochs):
        torch.manual_seed(derive_seed(t.seed, epoch, 1))  # augmentation and dropout
        started = time.perf_counter()
        order = torch.from_numpy(epoch_permutation(t.seed, epoch, len(y))).to(device)
        net.train()
        for start in range(0, len(y), bs):
            idx = order[start:start + bs]
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                loss = F.cross_entropy(forward(x[idx], train=True), y[idx])
                if weight > 0:
                    loss = loss + l2_penalty(net, weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if schedule is not None:
                schedule.step()
        sync()
        train_seconds.append(time.perf_counter() - started)
        validate()
        epoch_seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    val = validate()
    return Timings(epoch_seconds, train_seconds, time.perf_counter() - started, *val)


def keras_loop(cfg: DictConfig, data: Splits) -> Timings:
    """`model.fit` on NumPy arrays, one call per epoch on that epoch's shuffled order (the
    batches mnistlab trains on; fit's own shuffle would gather every batch inside the epoch),
    with its validation_data: what Keras users write. A callback only reads the clock."""
    if cfg.backend.keras_backend != "tensorflow":
        raise ConfigError("the bench's bare Keras loop runs on backend.keras_backend=tensorflow")
    keras = import_keras("tensorflow")
    import tensorflow as tf

    from mnistlab.backends.keras_augment import AUGMENTATIONS
    from mnistlab.backends.keras_model import MODELS
    from mnistlab.backends.keras_optim import OPTIMIZERS
    from mnistlab.backends.keras_schedule import SCHEDULES
    from mnistlab.backends.keras_trainer import PRECISION_POLICIES, as_images, seed_epoch

    t, bs, ebs = cfg.trainer, cfg.data.batch_size, cfg.data.eval_batch_size
    threads = run_threads(t)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    if t.accelerator == "cpu":
        tf.config.set_visible_devices([], "GPU")
    keras.utils.set_random_seed(t.seed)
    keras.config.set_dtype_policy(PRECISION_POLICIES[str(t.precision)])
    model = MODELS[cfg.model.name](cfg.model, data.spec.image_shape, data.spec.num_classes,
                                   cfg.regularization.weight, AUGMENTATIONS[cfg.aug.name](cfg.aug))
    steps = steps_per_epoch(cfg, data)
    lr = SCHEDULES[cfg.scheduler.name](cfg.scheduler, cfg.optimizer.lr, steps,
                                       steps * t.max_epochs)
    model.compile(optimizer=OPTIMIZERS[cfg.optimizer.name](cfg.optimizer, lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.begin = time.perf_counter()

        def on_test_begin(self, logs: dict | None = None) -> None:
            self.trained = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.end = time.perf_counter()

    clock = Clock()
    xv = as_images(data.x_val)
    epoch_seconds, train_seconds = [], []
    for epoch in range(t.max_epochs):
        seed_epoch(keras, model, t.seed, epoch)
        order = epoch_permutation(t.seed, epoch, len(data.y_train))
        model.fit(as_images(data.x_train[order]), data.y_train[order], batch_size=bs, epochs=1,
                  shuffle=False, validation_data=(xv, data.y_val), validation_batch_size=ebs,
                  callbacks=[clock], verbose=0)
        epoch_seconds.append(clock.end - clock.begin)
        train_seconds.append(clock.trained - clock.begin)
    started = time.perf_counter()
    val_loss, val_acc = model.evaluate(xv, data.y_val, batch_size=ebs, verbose=0)
    return Timings(epoch_seconds, train_seconds, time.perf_counter() - started, val_loss, val_acc)


LOOPS: dict[str, Callable[[DictConfig, Splits], Timings]] = {
    "lightning": torch_loop, "keras": keras_loop}


def run(overrides: list[str]) -> dict[str, object]:
    """The bare run of `overrides` (a train.py command line): its timings and what it trained on."""
    cfg = compose_config(overrides)
    if cfg.trainer.devices not in ("auto", 1):
        raise ConfigError("the bench's bare loops train on one device: use trainer.devices=auto")
    data = load_splits(cfg.data).limited(*sample_limits(cfg))
    timings = LOOPS[cfg.backend.name](cfg, data)
    return {**asdict(timings), "train_samples": len(data.y_train), "val_samples": len(data.y_val),
            "batch_size": cfg.data.batch_size, "eval_batch_size": cfg.data.eval_batch_size}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.bench_bare", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the JSON result")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for train.py")
    args = parser.parse_args(argv)
    args.out.write_text(json.dumps(run(args.overrides), indent=2) + "\n")


if __name__ == "__main__":
    main()
