"""A finished Keras run's model, loaded from its checkpoint, for eval, predict and export.

`keras.models.load_model` restores the model as trained (its augmentation layers are inactive
outside training, and its dtype policy is the run's precision), so a run's own test split
reproduces its test accuracy. The fp32 logits and the ONNX export come from the same network
rebuilt without augmentation under the float32 policy, holding the checkpoint's weights.

Import this only through `load`, which chooses Keras' backend first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from mnistlab.backends.keras.env import import_keras
from mnistlab.data.catalog import DatasetSpec
from mnistlab.errors import DataError
from mnistlab.training.threads import limit_blas, run_threads

FP32 = ("32-true", "32")


class KerasClassifier:
    """The model of one checkpoint; `fp32` is built the first time it is asked for."""

    def __init__(self, keras: Any, cfg: DictConfig, spec: DatasetSpec, model: Any) -> None:
        self.keras, self.cfg, self.spec, self.model = keras, cfg, spec, model
        self._fp32: Any = None

    def logits(self, x: np.ndarray, batch_size: int, precision: str | None = None) -> np.ndarray:
        """uint8 (N, H, W, C) images -> float32 logits (N, classes)."""
        from mnistlab.backends.keras.components import evaluation_batches

        model = self.model
        if precision is not None and str(precision) in FP32:
            model = self.fp32()
        out = model.predict(evaluation_batches(x, None, batch_size), verbose=0)
        return np.asarray(self.keras.ops.convert_to_numpy(out), dtype=np.float32)

    def fp32(self) -> Any:
        """The network without its augmentation layers, float32 throughout, same weights."""
        if self._fp32 is None:
            from mnistlab.backends.keras.model import MODELS

            keras = self.keras
            previous = keras.config.dtype_policy()
            keras.config.set_dtype_policy("float32")
            try:
                fresh = MODELS[self.cfg.model.name](self.cfg.model, self.spec.input_shape,
                                                    self.spec.num_classes)
            finally:
                keras.config.set_dtype_policy(previous)
            # the builders add layers in the same order with or without augmentation, whose
            # layers hold no weights: the weighted layers pair up one to one
            ours = [layer for layer in fresh.layers if layer.weights]
            theirs = [layer for layer in self.model.layers if layer.weights]
            for a, b in zip(ours, theirs, strict=True):
                a.set_weights([np.asarray(w, dtype=np.float32) for w in b.get_weights()])
            self._fp32 = fresh
        return self._fp32

    def export_onnx(self, path: Path, input_shape: tuple[int, int, int]) -> None:
        """fp32 ONNX through Keras 3's own `Model.export` (which runs tf2onnx on the TensorFlow
        backend and torch's exporter on the torch one), with a dynamic batch axis."""
        import tensorflow as tf

        spec = tf.TensorSpec((None, *input_shape), tf.float32, name="images")
        self.fp32().export(str(path), format="onnx", input_signature=[spec], verbose=False)


def load(cfg: DictConfig, spec: DatasetSpec, checkpoint: Path) -> KerasClassifier:
    """The run's model from checkpoint; DataError naming a file that is not a Keras model."""
    keras = import_keras(cfg.backend.keras_backend)
    from mnistlab.backends.keras import components  # noqa: F401  registers the custom layers
    from mnistlab.backends.keras.trainer import configure

    limit_blas(run_threads(cfg.trainer))
    configure(keras, cfg.trainer)
    try:
        model = keras.models.load_model(checkpoint)
    except Exception as e:
        raise DataError(f"cannot read checkpoint {checkpoint} ({type(e).__name__}): not a "
                        "Keras model saved by mnistlab") from None
    return KerasClassifier(keras, cfg, spec, model)
