"""The learning-rate schedule registry of the torch side: stepped after every optimizer step.

Each builder returns the scheduler for `optimizer` (None: a constant lr); keras/schedule.py has
the builders of the same names, and the parity tests check that both give the same lr at every
step. Step k (0-based) of the run trains with the lr the schedule gives for k.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from mnistlab.registry import Registry

# (optimizer, scheduler config, steps per epoch, total steps) -> scheduler or None
ScheduleBuilder = Callable[[torch.optim.Optimizer, DictConfig, int, int], LRScheduler | None]
SCHEDULES: Registry[ScheduleBuilder] = Registry("scheduler")


@SCHEDULES.register("none")
def constant(optimizer: torch.optim.Optimizer, sched: DictConfig, steps_per_epoch: int,
             total_steps: int) -> None:
    return None


def cosine_factor(step: int, warmup_steps: int, decay_steps: int, alpha: float) -> float:
    """keras.optimizers.schedules.CosineDecay's formula as a factor of the peak lr: linear from 0
    over warmup_steps, then 0.5 * (1 + cos(pi * t)) from 1 down to alpha over decay_steps.

    Ours rather than torch's LinearLR + CosineAnnealingLR in a SequentialLR: LinearLR cannot start
    at 0, and the chained cosine drifts from the closed form that Keras computes.
    """
    if step < warmup_steps:
        return step / warmup_steps
    done = min(step - warmup_steps, decay_steps) / decay_steps
    return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * done)) + alpha


@SCHEDULES.register("cosine")
def cosine(optimizer: torch.optim.Optimizer, sched: DictConfig, steps_per_epoch: int,
           total_steps: int) -> LRScheduler:
    warmup = sched.warmup_epochs * steps_per_epoch
    lr = optimizer.param_groups[0]["lr"]
    alpha = sched.min_lr / lr
    decay = total_steps - warmup
    return LambdaLR(optimizer, lambda step: cosine_factor(step, warmup, decay, alpha))


@SCHEDULES.register("onecycle")
def onecycle(optimizer: torch.optim.Optimizer, sched: DictConfig, steps_per_epoch: int,
             total_steps: int) -> LRScheduler:
    """torch's own OneCycleLR; momentum (Adam's beta1) is not cycled, since Keras cannot."""
    return OneCycleLR(optimizer, max_lr=sched.max_lr, total_steps=total_steps,
                      pct_start=sched.pct_start, anneal_strategy="cos", cycle_momentum=False,
                      div_factor=sched.div_factor, final_div_factor=sched.final_div_factor,
                      three_phase=False)
