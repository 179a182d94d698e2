"""`python predict.py run=<run dir> inputs=<files, folders or globs>` (or `model=<file.onnx>`):
each image's class, its probability and the top classes, printed as a table and written as
predictions.csv and predictions.json in the command's output directory.

Inputs are brought to the run's images as inference/inputs.py says (channels, size, and the
inversion of a light-background image for a dark-background dataset). An input that cannot be
used is one line naming it, and the others are still classified. With `model=<file.onnx>` only
onnxruntime runs: nothing here imports torch or TensorFlow then.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mnistlab.atomic import write_atomically
from mnistlab.config.checks import check_rules, field_rules
from mnistlab.errors import ConfigError, DataError
from mnistlab.inference.inputs import read_inputs
from mnistlab.inference.options import PredictConfig

COLUMNS = ("file", "class", "probability", "top", "inverted")


class RunModel:
    """A run's checkpoint on its own backend, with what predict needs to know of its data."""

    def __init__(self, directory: str, checkpoint: str) -> None:
        from mnistlab.inference.runs import dark_background, open_run

        run = open_run(directory)
        path = run.checkpoint(checkpoint)
        splits = run.splits()
        self.classes, self.input_shape = splits.spec.classes, splits.spec.input_shape
        self.dark_background = dark_background(splits.x_train)
        self.batch_size = int(run.cfg.data.eval_batch_size)
        self.classifier = run.backend.load_classifier(run.cfg, splits.spec, path)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.classifier.logits(x, self.batch_size)


class OnnxModel:
    """An exported model; its metadata says the classes and the preprocessing."""

    def __init__(self, path: str) -> None:
        from mnistlab.inference.onnx_model import OnnxClassifier

        self.session = OnnxClassifier(Path(path).expanduser())
        info = self.session.info
        self.classes, self.input_shape = info.classes, info.input_shape
        self.dark_background = info.dark_background

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.session.logits(x)


def softmax(logits: np.ndarray) -> np.ndarray:
    """numpy's, so that an ONNX prediction imports no scipy either."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def rows_for(names: list[str], probs: np.ndarray, classes: tuple[str, ...], top: int,
             inverted: list[bool]) -> list[dict[str, Any]]:
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [{"file": name, "class": classes[int(best[0])],
             "probability": float(p[best[0]]),
             "top": [{"class": classes[int(k)], "probability": float(p[k])} for k in best],
             "inverted": flipped}
            for name, p, best, flipped in zip(names, probs, order, inverted, strict=True)]


def write_outputs(folder: Path, rows: list[dict[str, Any]], problems: list[str]) -> None:
    write_atomically(folder / "predictions.json",
                     json.dumps({"predictions": rows, "problems": problems}, indent=1))
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r["file"], r["class"], f"{r['probability']:.6f}",
                         " ".join(f"{t['class']}:{t['probability']:.4f}" for t in r["top"]),
                         int(r["inverted"])])
    write_atomically(folder / "predictions.csv", text.getvalue())


def print_rows(rows: list[dict[str, Any]], problems: list[str], folder: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnistlab predict", title_justify="left")
    for column in ("file", "class", "probability", "top"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["file"] + (" (inverted)" if r["inverted"] else ""), r["class"],
                      f"{r['probability']:.4f}",
                      ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top"]))
    Console().print(table)
    for line in problems:
        sys.stderr.write(f"skipped: {line}\n")
    print(f"written: {folder / 'predictions.csv'}, {folder / 'predictions.json'}")


def output_folder() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()


def main(cfg: DictConfig) -> list[dict[str, Any]]:
    check_rules(cfg, field_rules(PredictConfig))
    if (cfg.run is None) == (cfg.onnx is None):
        raise ConfigError("give either run=<run dir> or model=<file.onnx> (exported by "
                          "export.py), not both and not neither")
    patterns = (OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs)
                else [str(cfg.inputs)])
    model = (OnnxModel(cfg.onnx) if cfg.onnx is not None
             else RunModel(cfg.run, cfg.checkpoint))
    found = read_inputs([str(p) for p in patterns], model.input_shape, model.dark_background)
    if not len(found.images):
        raise DataError("no input could be classified: " + "; ".join(found.problems))
    probs = softmax(model.logits(found.images))
    rows = rows_for(found.names, probs, tuple(model.classes), min(cfg.top, len(model.classes)),
                    found.inverted)
    folder = output_folder()
    write_outputs(folder, rows, found.problems)
    print_rows(rows, found.problems, folder)
    return rows
