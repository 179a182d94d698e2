"""The Lightning backend: model, L2 penalty, determinism, divergence, real MNIST, each rank's
batches. A debug run end to end in a process of its own: tests/processes/test_debug_runs.py."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab.backends.lightning.batches import BatchGroups, TensorBatches
from mnistlab.backends.lightning.model import build_cnn, count_params, kernel_layers, l2_penalty
from tests.conftest import debug_run, metric_rows, run_dirs, train_here


def test_cnn_has_the_study_architecture(compose_cfg) -> None:
    net = build_cnn(compose_cfg().model, (28, 28, 1), 10)
    assert count_params(net) == 225_034
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_pooling_before_relu_is_the_study_block_with_its_gradients(compose_cfg) -> None:
    """Conv-MaxPool-ReLU (faster) against the study's Conv-ReLU-MaxPool, on the same weights."""
    from torch import nn

    torch.manual_seed(0)
    net = build_cnn(compose_cfg().model, (28, 28, 1), 10).eval()  # no dropout: one function
    study = [nn.ReLU() if isinstance(m, nn.MaxPool2d) else nn.MaxPool2d(2)
             if isinstance(m, nn.ReLU) and i < 6 else m for i, m in enumerate(net)]
    assert [type(m).__name__ for m in study[:3]] == ["Conv2d", "ReLU", "MaxPool2d"]
    x = torch.rand(8, 1, 28, 28)
    ours, theirs = net(x), nn.Sequential(*study)(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    grads = [torch.autograd.grad(out.square().sum(), net.parameters()) for out in (ours, theirs)]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_network_is_channels_last_and_augments_in_float32(compose_cfg) -> None:
    from mnistlab.backends.lightning.augment import shift_rotate
    from mnistlab.backends.lightning.components import build_network
    from mnistlab.data.catalog import DATASETS

    net = build_network(compose_cfg(), DATASETS["mnist"])
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert shift_rotate(torch.rand(4, 1, 28, 28), 15, 0.1, 0.1).dtype == torch.float32


def test_cnn_starts_from_keras_glorot_uniform_init(compose_cfg) -> None:
    torch.manual_seed(0)
    for m in kernel_layers(build_cnn(compose_cfg().model, (28, 28, 1), 10)):
        w = m.weight.detach()
        receptive = w[0, 0].numel() if w.dim() == 4 else 1
        limit = (6 / (w.shape[0] * receptive + w.shape[1] * receptive)) ** 0.5
        assert float(w.abs().max()) <= limit and float(w.abs().max()) > 0.9 * limit
        assert not m.bias.detach().any()


def test_l2_penalty_is_weight_times_sum_of_squared_kernels(compose_cfg) -> None:
    net = build_cnn(compose_cfg().model, (28, 28, 1), 10)
    kernels = [net[0].weight, net[3].weight, net[8].weight, net[10].weight]  # no biases
    expected = 1e-3 * sum(float((w.detach().double() ** 2).sum()) for w in kernels)
    assert l2_penalty(net, 1e-3).item() == pytest.approx(expected, rel=1e-6)
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "bias") and m.bias is not None:
                m.bias.fill_(100.0)
    assert l2_penalty(net, 1e-3).item() == pytest.approx(expected, rel=1e-6)


def test_same_seed_twice_gives_identical_metrics(tiny_data, tmp_path):
    def metrics(out: Path) -> tuple[list[tuple[str, ...]], float]:
        run = debug_run(tiny_data, out, "logger=none")
        with (run / "metrics.csv").open() as f:
            rows = [tuple(v for k, v in r.items() if k != "epoch_seconds")
                    for r in csv.DictReader(f)]
        return rows, json.loads((run / "summary.json").read_text())["test_loss"]

    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_groups_of_batches_train_as_one_batch_per_loop_iteration(tiny_data, tmp_path,
                                                                 monkeypatch, precision):
    """Lightning gets BatchGroups; the batches, their order, the optimizer steps and the
    schedule's per-step lrs are those of one batch per iteration (10 batches an epoch: in groups
    of 1, and of 3 with a short last one). In bf16 the group's steps share one autocast region,
    Lightning's, whose cast cache is off: a cached bf16 copy of a weight would outlive its
    optimizer step."""
    from mnistlab.backends.lightning import trainer

    def trained(size: int) -> tuple[list[dict[str, str]], dict]:
        monkeypatch.setattr(trainer, "BATCHES_PER_GROUP", size)
        run = debug_run(tiny_data, tmp_path / str(size), "logger=none", "scheduler=onecycle",
                        f"trainer.precision={precision}")
        rows = [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in metric_rows(run)]
        return rows, json.loads((run / "summary.json").read_text())["test_loss"]

    assert trained(3) == trained(1)


def test_batch_groups_hold_consecutive_batches_and_pass_the_epoch_on() -> None:
    x = np.arange(103, dtype=np.uint8).reshape(103, 1, 1)
    batches = TensorBatches(x, np.arange(103), 10, torch.device("cpu"), shuffle=True, seed=3)
    groups = BatchGroups(batches, 4)
    groups.set_epoch(2)
    assert batches.epoch == 2 and len(groups) == 3
    sizes = [len(group) for group in groups]
    assert sizes == [4, 4, 3]
    flat = [y.tolist() for group in groups for _, y in group]
    assert flat == [y.tolist() for _, y in batches]


def test_non_finite_loss_stops_the_run_with_one_line(tiny_data, tmp_path):
    done = train_here("trainer=debug", f"paths.data={tiny_data}", "data.val_size=100",
                      "logger=none", "optimizer.lr=1e30", output=tmp_path / "out")
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()[-1:]
    # nan or inf, depending on the machine's floating-point path: any non-finite loss stops it
    assert re.match(r"error: training loss became (nan|-?inf) at epoch 1, batch \d+;", line)
    assert "Traceback" not in done.stderr
    [run] = run_dirs(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "diverged" in summary["error"]


@pytest.mark.slow
def test_one_epoch_on_real_mnist_reaches_97_5_percent(real_data, tmp_path):
    done = train_here(f"paths.data={real_data}", "trainer.max_epochs=1", "optimizer.lr=0.001",
                      "aug=none", "trainer.progress_bar=false", output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    print(f"lightning, 1 epoch on real MNIST: {summary}")
    assert summary["test_acc"] >= 0.975


def test_deterministic_mode_skips_the_nan_fill_of_new_tensors() -> None:
    from mnistlab.backends.lightning.components import use_deterministic_algorithms

    saved = (torch.are_deterministic_algorithms_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory)
    try:
        use_deterministic_algorithms()
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.utils.deterministic.fill_uninitialized_memory
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.utils.deterministic.fill_uninitialized_memory = saved[1]


def test_training_steps_check_cuda_without_nvml() -> None:
    """Lightning's import sets PYTORCH_NVML_BASED_CUDA_CHECK=1, under which torch's Adam asks
    NVML for devices at every step (~0.4 ms on a CPU); fit and test run without it, and it is
    set back afterwards."""
    import os

    from mnistlab.backends.lightning.trainer import NVML_CHECK, torch_cuda_checks

    assert os.environ.get(NVML_CHECK) == "1"  # imported Lightning set it
    with torch_cuda_checks():
        assert NVML_CHECK not in os.environ
        assert torch.optim.Adam([torch.zeros(1, requires_grad=True)]).step() is None
    assert os.environ.get(NVML_CHECK) == "1"


# ---------------------------------------------------------------- several devices: each rank


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_take_disjoint_parts_that_make_the_single_process_batch(shuffle: bool) -> None:
    x = np.arange(103, dtype=np.uint8).reshape(103, 1, 1)
    y = np.arange(103)
    one = TensorBatches(x, y, 10, torch.device("cpu"), shuffle=shuffle, seed=3)
    ranks = [TensorBatches(x, y, 10, torch.device("cpu"), shuffle=shuffle, seed=3, rank=r,
                           world_size=2) for r in range(2)]
    for batches in (one, *ranks):
        batches.set_epoch(4)
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 11
    for (_, whole), (_, part0), (_, part1) in zip(one, *ranks, strict=True):
        assert not set(part0.tolist()) & set(part1.tolist())
        assert sorted(part0.tolist() + part1.tolist()) == sorted(whole.tolist())
        assert abs(len(part0) - len(part1)) <= 1


def test_lightnings_hook_name_is_a_plain_attribute_and_other_names_still_register(
        compose_cfg) -> None:
    """ClassifierModule sets `_current_fx_name` (34 times a step) past nn.Module's checks;
    every other attribute still goes through them."""
    from mnistlab.backends.lightning.module import ClassifierModule
    from mnistlab.data.catalog import DATASETS

    module = ClassifierModule(compose_cfg(), DATASETS["mnist"])
    module._current_fx_name = "training_step"
    assert vars(module)["_current_fx_name"] == "training_step"
    module.head = torch.nn.Linear(2, 2)
    assert module._modules["head"] is module.head and "head" not in vars(module)
    assert "head.weight" in dict(module.named_parameters())
