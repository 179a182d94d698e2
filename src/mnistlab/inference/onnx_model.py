"""An ONNX file written by export.py, run in onnxruntime: what predict.py needs to classify
images with neither torch nor TensorFlow imported.

export.py records in the model's metadata (`mnistlab.*` keys) what a reader needs besides the
graph: the class names, the input's image shape and scaling, and whether the training images
are light on a dark background (predict.py's inversion rule).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistlab.errors import DataError

# the input every exported model takes, on both backends
INPUT = "float32 (N, H, W, C) in [0, 1]: the uint8 pixels / 255, channels last"
META = "mnistlab."


@dataclass(frozen=True)
class ModelInfo:
    """What the metadata says of the model's input and output."""

    classes: tuple[str, ...]
    input_shape: tuple[int, int, int]  # (H, W, C)
    dark_background: bool
    backend: str
    dataset: str

    def as_metadata(self) -> dict[str, str]:
        return {f"{META}classes": json.dumps(list(self.classes)),
                f"{META}input_shape": json.dumps(list(self.input_shape)),
                f"{META}input": INPUT,
                f"{META}dark_background": json.dumps(self.dark_background),
                f"{META}backend": self.backend, f"{META}dataset": self.dataset}

    @classmethod
    def from_metadata(cls, path: Path, meta: dict[str, str]) -> ModelInfo:
        try:
            return cls(classes=tuple(json.loads(meta[f"{META}classes"])),
                       input_shape=tuple(json.loads(meta[f"{META}input_shape"])),
                       dark_background=json.loads(meta[f"{META}dark_background"]),
                       backend=meta[f"{META}backend"], dataset=meta[f"{META}dataset"])
        except (KeyError, ValueError) as e:
            raise DataError(f"model={path}: its metadata lacks {e}; export it with "
                            "export.py, which records the class names and preprocessing") from None


class OnnxClassifier:
    """One inference session over an exported model, on this machine's cores."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise DataError(f"model={path}: no such file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/... types
            reason = str(e).splitlines()[0][:160]
            raise DataError(f"model={path}: not a readable ONNX model ({reason})") from None
        self.info = ModelInfo.from_metadata(path, self.session.get_modelmeta().custom_metadata_map)
        self.input = self.session.get_inputs()[0].name

    def logits(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """uint8 (N, H, W, C) images -> float32 logits (N, classes)."""
        out = [self.session.run(None, {self.input: x[i:i + batch_size].astype(np.float32) / 255})[0]
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.info.classes)), np.float32)
