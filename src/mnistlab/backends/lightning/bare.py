"""The bench's yardstick on this side (`mnistlab.bench.bare`): the recipe as a bare torch loop,
built by `components` like the LightningModule and trained with nothing else: tensors on the
device, one permutation per epoch, index slices, forward, backward, step, and the epoch's
training loss and accuracy summed on the device (what a torch loop logs, and Keras' fit
computes in the other bare loop)."""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from mnistlab.backends.lightning.components import (
    as_images,
    build_augment,
    build_network,
    build_optimizer,
    use_deterministic_algorithms,
)
from mnistlab.backends.lightning.model import l2_penalty
from mnistlab.data import Splits
from mnistlab.training import turns
from mnistlab.training.contract import EVAL_PASSES, Timings, steps_per_epoch
from mnistlab.training.seeds import derive_seed, epoch_permutation
from mnistlab.training.threads import run_threads


def torch_device(accelerator: str) -> torch.device:
    """trainer.accelerator as Lightning picks it (auto: a CUDA GPU if there is one)."""
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device("cuda" if accelerator == "gpu" else accelerator)


def loop(cfg: DictConfig, data: Splits) -> Timings:
    """Tensors on the device, one permutation per epoch, index slices, forward, backward, step."""
    t, bs, ebs = cfg.trainer, cfg.data.batch_size, cfg.data.eval_batch_size
    weight = cfg.regularization.weight
    threads = run_threads(t)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    if t.deterministic:  # what Lightning's deterministic=True sets
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        use_deterministic_algorithms()
    device = torch_device(t.accelerator)
    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(t.precision))
    scaler = torch.amp.GradScaler(device.type, enabled=half is torch.float16)
    torch.manual_seed(t.seed)
    net = build_network(cfg, data.spec).to(device)
    augment = build_augment(cfg)
    opt, schedule = build_optimizer(cfg, net.parameters(), steps_per_epoch(cfg, data))
    x, y, xv, yv = (torch.from_numpy(a).to(device)
                    for a in (data.x_train, data.y_train, data.x_val, data.y_val))

    def forward(images: torch.Tensor, train: bool) -> torch.Tensor:
        images = as_images(images)
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

    epoch_seconds, train_seconds = [], []
    for epoch in range(t.max_epochs):
        torch.manual_seed(derive_seed(t.seed, epoch, 1))  # augmentation and dropout
        started = turns.clock()  # time.perf_counter but under the bench
        order = torch.from_numpy(epoch_permutation(t.seed, epoch, len(y))).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        net.train()
        for start in range(0, len(y), bs):
            turns.wait_for_turn()
            idx = order[start:start + bs]
            labels = y[idx]
            with torch.autocast(device.type, dtype=half, enabled=half is not None):
                logits = forward(x[idx], train=True)
                loss = F.cross_entropy(logits, labels)
                if weight > 0:
                    loss = loss + l2_penalty(net, weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            if schedule is not None:
                schedule.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == labels).sum()
        train = float(loss_sum) / len(y), float(correct) / len(y)  # one sync an epoch
        train_seconds.append(turns.clock() - started)
        validate()
        epoch_seconds.append(turns.clock() - started)
    passes = []
    for _ in range(EVAL_PASSES):
        started = time.perf_counter()
        val = validate()
        passes.append(time.perf_counter() - started)
    return Timings(epoch_seconds, train_seconds, min(passes), *val, *train)
