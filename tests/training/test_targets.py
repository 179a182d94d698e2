"""trainer.stop_at_val_acc is reached as both backends' float32 metrics have it: by the Keras
stop, by Lightning's EarlyStopping and by summary.json's seconds_to_target alike."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning.callbacks import EarlyStopping

from mnistlab.training.contract import float32_below, reached_target

TARGET = 0.987


def test_a_val_acc_exactly_at_the_target_reaches_it() -> None:
    at, under = np.float32(4935 / 5000), np.float32(4934 / 5000)
    assert float(at) < TARGET  # 0.98699999 in float32: a float64 >= would miss it
    assert reached_target(float(at), TARGET)
    assert not reached_target(float(under), TARGET)


def test_lightning_stops_where_the_others_do() -> None:
    stop = EarlyStopping(monitor="val/acc", mode="max", stopping_threshold=float32_below(TARGET))
    for right in (4933, 4934, 4935, 4936, 5000):
        val = torch.tensor(right / 5000, dtype=torch.float32)
        assert bool(stop.monitor_op(val, stop.stopping_threshold)) == reached_target(
            float(val), TARGET), right
