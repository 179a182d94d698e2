"""The learning-rate schedule registry of the Keras side: the lr of lightning/schedule.py at every
optimizer step (Keras evaluates a schedule at optimizer.iterations, 0 for the first step).

Import this only after `env.import_keras` has chosen the backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import keras
from keras import ops
from omegaconf import DictConfig

from mnistlab.registry import Registry

LearningRate = float | keras.optimizers.schedules.LearningRateSchedule
# (scheduler config, optimizer.lr, steps per epoch, total steps) -> what Keras' optimizer takes
ScheduleBuilder = Callable[[DictConfig, float, int, int], LearningRate]
SCHEDULES: Registry[ScheduleBuilder] = Registry("scheduler")


@SCHEDULES.register("none")
def constant(sched: DictConfig, lr: float, steps_per_epoch: int, total_steps: int) -> float:
    return lr


@SCHEDULES.register("cosine")
def cosine(sched: DictConfig, lr: float, steps_per_epoch: int, total_steps: int) -> LearningRate:
    """Keras' own CosineDecay: warmup from 0 to lr, then cosine down to min_lr at the last step."""
    warmup = sched.warmup_epochs * steps_per_epoch
    alpha = sched.min_lr / lr
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(lr, total_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(0.0, total_steps - warmup, alpha=alpha,
                                                  warmup_target=lr, warmup_steps=warmup)


@keras.saving.register_keras_serializable(package="mnistlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """torch.optim.lr_scheduler.OneCycleLR (cos, two phases), which Keras does not have: cosine
    from max_lr / div_factor up to max_lr until step pct_start * total - 1, then cosine down to
    max_lr / div_factor / final_div_factor at step total - 1."""

    def __init__(self, max_lr: float, total_steps: int, pct_start: float, div_factor: float,
                 final_div_factor: float) -> None:
        self.max_lr, self.total_steps, self.pct_start = max_lr, total_steps, pct_start
        self.div_factor, self.final_div_factor = div_factor, final_div_factor

    def __call__(self, step):
        initial = self.max_lr / self.div_factor
        final = initial / self.final_div_factor
        up_end = float(self.pct_start * self.total_steps) - 1  # torch's phase boundary
        down_end = self.total_steps - 1
        step = ops.cast(step, "float32")

        def anneal(start: float, end: float, pct):
            return end + (start - end) / 2.0 * (ops.cos(math.pi * pct) + 1)

        up = anneal(initial, self.max_lr, step / up_end)
        down = anneal(self.max_lr, final, (step - up_end) / (down_end - up_end))
        return ops.where(step <= up_end, up, down)

    def get_config(self) -> dict:
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "pct_start": self.pct_start, "div_factor": self.div_factor,
                "final_div_factor": self.final_div_factor}


@SCHEDULES.register("onecycle")
def onecycle(sched: DictConfig, lr: float, steps_per_epoch: int, total_steps: int) -> OneCycle:
    return OneCycle(sched.max_lr, total_steps, sched.pct_start, sched.div_factor,
                    sched.final_div_factor)
