"""The official Keras "Simple MNIST convnet" (keras.io/examples/vision/mnist_convnet), timed.

It is here as the yardstick of `experiment=fast`: that recipe must reach its accuracy in at most
1/8 of this example's `model.fit` wall time, measured on the same machine in the same conditions.
Faithful to the example: the official 60,000 training images (its own `validation_split=0.1`,
not mnistlab's split), Conv2D(32, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu) -> MaxPool(2)
-> Flatten -> Dropout(0.5) -> Dense(10, softmax), Adam with Keras' defaults, categorical
cross-entropy, batch size 128, 15 epochs; it reports about 99.1 % test accuracy.

    python -m mnistlab.backends.keras.example [--epochs 15] [--data-dir DIR] [--json PATH]

DIR holds the four IDX .gz files (default `$MNISTLAB_DATA_DIR/mnist`, else `<repo>/data/mnist`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from mnistlab.backends.keras.env import import_keras
from mnistlab.config import REPO_ROOT
from mnistlab.data.catalog import DATASETS
from mnistlab.data.idx import read_idx
from mnistlab.errors import MnistlabError
from mnistlab.training.threads import cores


def default_data_dir() -> Path:
    root = os.environ.get("MNISTLAB_DATA_DIR")
    return (Path(root) if root else REPO_ROOT / "data") / "mnist"


def load(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The example's preprocessing: float32 in [0, 1], (N, 28, 28, 1), one-hot labels."""
    files = DATASETS["mnist"].files

    def images(role: str) -> np.ndarray:
        return read_idx(folder / files[role], 3).astype("float32")[..., None] / 255

    def one_hot(role: str) -> np.ndarray:
        return np.eye(10, dtype="float32")[read_idx(folder / files[role], 1)]

    return images("train_images"), one_hot("train_labels"), images("test_images"), one_hot(
        "test_labels")


def run(epochs: int, data_dir: Path, seed: int, threads: int) -> dict[str, float | int]:
    x_train, y_train, x_test, y_test = load(data_dir)
    keras = import_keras("tensorflow")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)  # as the trainer sets them
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=128, epochs=epochs, validation_split=0.1,
                        verbose=2)
    fit_seconds = time.perf_counter() - start
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)
    return {"epochs": epochs, "fit_seconds": round(fit_seconds, 3),
            "test_acc": float(test_acc), "test_loss": float(test_loss),
            "val_acc": float(history.history["val_accuracy"][-1]),
            "params": model.count_params(), "threads": threads, "train_samples": len(x_train)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnistlab.backends.keras.example",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=cores(),
                        help="TensorFlow op threads (default: this process's cores)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    try:
        result = run(args.epochs, args.data_dir.expanduser(), args.seed, args.threads)
    except MnistlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"fit seconds: {result['fit_seconds']:.1f} ({args.epochs} epochs), "
          f"test accuracy: {result['test_acc']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
