"""The Keras backend: one Keras backend per process, custom layers in checkpoints, determinism,
mixed precision, divergence, real MNIST. Its lazy imports and a debug run beside Lightning's, in
processes of their own: tests/processes/test_backend_imports.py, test_debug_runs.py."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mnistlab.backends.keras.env import import_keras
from mnistlab.data import load_splits
from mnistlab.errors import ConfigError
from mnistlab.training.contract import FitResult, RunContext
from mnistlab.training.recorder import EpochRecorder
from tests.conftest import run_dirs, train_here

TINY = ["trainer=debug", "data.val_size=100"]


def fit_in_process(compose_cfg, tiny_data: Path, run_dir: Path,
                   *overrides: str) -> tuple[list[dict[str, float]], FitResult]:
    from mnistlab.backends.keras.trainer import fit

    cfg = compose_cfg(["backend=keras", *TINY, f"paths.data={tiny_data}", "logger=none",
                       *overrides])
    run_dir.mkdir(parents=True)
    recorder = EpochRecorder(run_dir)
    result = fit(cfg, load_splits(cfg.data), RunContext(run_dir, recorder))
    return recorder.rows, result


def test_keras_cannot_switch_backends_once_imported() -> None:
    keras = import_keras("tensorflow")
    assert keras.backend.backend() == "tensorflow"
    with pytest.raises(ConfigError, match="keras_backend=jax.*with the tensorflow backend"):
        import_keras("jax")


def test_checkpoint_with_custom_flip_layer_loads(compose_cfg, tmp_path) -> None:
    keras = import_keras("tensorflow")
    from mnistlab.backends.keras.augment import AUGMENTATIONS, RandomFlipP
    from mnistlab.backends.keras.model import build_cnn

    cfg = compose_cfg(["aug=flip", "aug.horizontal_p=0.2", "aug.vertical_p=0.7"])
    model = build_cnn(cfg.model, (28, 28, 1), 10, cfg.regularization.weight,
                      AUGMENTATIONS["flip"](cfg.aug))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    [flip] = [layer for layer in loaded.layers if isinstance(layer, RandomFlipP)]
    assert (flip.horizontal_p, flip.vertical_p) == (0.2, 0.7)
    assert keras.ops.convert_to_numpy(loaded.losses[0]) > 0  # the L2 regularizers came back too


def test_keras_same_seed_twice_gives_identical_metrics(compose_cfg, tiny_data, tmp_path) -> None:
    # the first run also writes Keras' CSVLogger file (logger=csv), where Lightning's goes
    first = fit_in_process(compose_cfg, tiny_data, tmp_path / "a", "logger=csv")
    second = fit_in_process(compose_cfg, tiny_data, tmp_path / "b")

    def without_time(rows: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]

    assert without_time(first[0]) == without_time(second[0])
    a, b = first[1], second[1]
    assert (a.params, a.test_loss, a.test_acc) == (b.params, b.test_loss, b.test_acc)
    np.testing.assert_array_equal(a.test_predictions.labels, b.test_predictions.labels)
    np.testing.assert_array_equal(a.test_predictions.confidence, b.test_predictions.confidence)
    with (tmp_path / "a" / "csv" / "metrics.csv").open() as f:
        keras_csv = list(csv.DictReader(f))
    assert [float(r["val_acc"]) for r in keras_csv] == [r["val_acc"] for r in first[0]]
    assert not (tmp_path / "b" / "csv").exists()


def as_floats(images: np.ndarray) -> np.ndarray:
    """uint8 images in [0, 1] as float32, divided as both backends divide them."""
    return images.astype(np.float32) / np.float32(255)


def test_one_fit_trains_each_epoch_on_the_batches_lightning_trains_on() -> None:
    """components.training_batches, the input of a run's one model.fit, resumed at epoch 2:
    epochs 2 and 3 in turn, each cut into the batches of TensorBatches (the Lightning side) in
    the same order, the last one short, the images scaled exactly as the torch side scales them."""
    import torch

    import_keras("tensorflow")
    from mnistlab.backends.keras.components import training_batches
    from mnistlab.backends.lightning.batches import TensorBatches

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (23, 4, 4, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 23, dtype=np.int64)
    batches = [(xb.numpy(), yb.numpy())
               for xb, yb in training_batches(x, y, 5, seed=7, epochs=range(2, 4))]
    lightning = TensorBatches(x, y, 5, torch.device("cpu"), shuffle=True, seed=7)
    expected = []
    for epoch in (2, 3):
        lightning.set_epoch(epoch)
        expected += [(as_floats(xb.numpy()), yb.numpy()) for xb, yb in lightning]
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3] * 2
    for (images, labels), (want_images, want_labels) in zip(batches, expected, strict=True):
        np.testing.assert_array_equal(images, want_images)
        np.testing.assert_array_equal(labels, want_labels)


def test_evaluation_batches_are_the_split_in_order_scaled_as_for_training() -> None:
    """components.evaluation_batches, the input of validation, test and predictions: the
    images in their stored order, scaled as training scales them, the last batch short; with
    no labels, the images alone."""
    import_keras("tensorflow")
    from mnistlab.backends.keras.components import evaluation_batches

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (23, 4, 4, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 23, dtype=np.int64)
    batches = list(evaluation_batches(x, y, 5).as_numpy_iterator())
    assert [len(labels) for _, labels in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([images for images, _ in batches]), as_floats(x))
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]), y)
    alone = list(evaluation_batches(x, None, 5).as_numpy_iterator())
    assert [len(batch) for batch in alone] == [1] * 5
    np.testing.assert_array_equal(np.concatenate([images for (images,) in alone]), as_floats(x))


def test_a_finished_keras_run_leaves_no_graphs_behind(compose_cfg, tiny_data, tmp_path) -> None:
    """The jobs of a long sweep in one process must not pile up: TensorFlow's gradient registry
    kept each run's train step alive (see drop_custom_gradients)."""
    import gc

    from tensorflow.python.framework import func_graph, ops

    def step_graphs() -> int:
        gc.collect()
        return sum(issubclass(type(o), func_graph.FuncGraph) for o in gc.get_objects())

    fit_in_process(compose_cfg, tiny_data, tmp_path / "a", "trainer.max_epochs=1")
    registered, graphs = set(ops._gradient_registry._registry), step_graphs()
    fit_in_process(compose_cfg, tiny_data, tmp_path / "b", "trainer.max_epochs=1")
    assert set(ops._gradient_registry._registry) == registered
    assert step_graphs() == graphs == 0


def test_the_train_step_is_traced_once(compose_cfg, tiny_data, tmp_path, monkeypatch) -> None:
    """The optimizer is built with the model: built in the first trace instead, its new
    variables make TensorFlow trace the step twice (~0.3 s of a first epoch)."""
    import_keras("tensorflow")
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = []
    train_step = TensorFlowTrainer.train_step

    def counted(self, data):
        traces.append(1)  # Python runs only while TensorFlow traces
        return train_step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    rows, _ = fit_in_process(compose_cfg, tiny_data, tmp_path / "run", "trainer.max_epochs=2")
    assert len(rows) == 2 and len(traces) == 1


@pytest.mark.parametrize(("precision", "policy"), [("bf16-mixed", "mixed_bfloat16"),
                                                   ("16-mixed", "mixed_float16")])
def test_mixed_precision_trains(compose_cfg, tiny_data, tmp_path, precision, policy) -> None:
    rows, result = fit_in_process(compose_cfg, tiny_data, tmp_path / "run", "trainer.max_epochs=1",
                                  f"trainer.precision={precision}")
    assert len(rows) == 1 and 0 <= result.test_acc <= 1 and result.params == 225_034
    keras = import_keras("tensorflow")
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = keras.models.load_model(tmp_path / "run" / "checkpoints" / "best.keras", compile=False)
    assert [layer.dtype_policy.name for layer in model.layers if layer.weights] == [
        policy, policy, policy, "float32"]  # float32 logits
    # the augmentation computes in float32, as torch's under autocast
    assert model.get_layer("shift_rotate").dtype_policy.name == "float32"


def test_keras_non_finite_loss_stops_the_run_with_one_line(tiny_data, tmp_path) -> None:
    done = train_here(*TINY, f"paths.data={tiny_data}", "backend=keras", "logger=none",
                      "optimizer.lr=1e30", output=tmp_path / "out")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    # nan or inf, depending on the machine's floating-point path: any non-finite loss stops it
    assert re.match(r"error: training loss became (nan|-?inf) at epoch 1, batch \d+;", errors[0])
    assert errors[0].endswith("the run diverged, try a smaller optimizer.lr")
    [run] = run_dirs(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "diverged" in summary["error"]


@pytest.mark.slow
def test_keras_one_epoch_on_real_mnist_reaches_97_5_percent(real_data, tmp_path) -> None:
    done = train_here(f"paths.data={real_data}", "backend=keras", "trainer.max_epochs=1",
                      "optimizer.lr=0.001", "aug=none", "logger=none", output=tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    [run] = run_dirs(tmp_path / "out")
    summary = json.loads((run / "summary.json").read_text())
    with (run / "metrics.csv").open() as f:
        [row] = list(csv.DictReader(f))
    print(f"keras, 1 epoch on real MNIST: {summary}; epoch_seconds={row['epoch_seconds']}")
    assert summary["test_acc"] >= 0.975
