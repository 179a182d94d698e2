"""`python export.py run=<run dir> format=onnx`: the run's network as `<run>/export/model.onnx`.

Each backend exports with its framework's current route (torch's exporter; Keras 3's own
`Model.export`, which runs tf2onnx on TensorFlow), in fp32, taking (N, H, W, C) floats in
[0, 1] and giving logits, with a dynamic batch axis; the input is renamed `images` and the
output `logits` on both, and the metadata records the class names and the preprocessing
(inference/onnx_model.py). Before the file takes its place, onnxruntime runs it on the run's
test set against the framework's fp32 logits: every predicted class must agree and every logit
lie within `tolerance`, or nothing is written. The figures go to export/check.json.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from mnistlab.config.checks import check_rules, field_rules
from mnistlab.errors import DataError
from mnistlab.inference.onnx_model import ModelInfo, OnnxClassifier
from mnistlab.inference.options import ExportConfig
from mnistlab.inference.runs import FinishedRun, dark_background, open_run
from mnistlab.run.summary import write_json_atomically
from mnistlab.training.contract import Classifier

log = logging.getLogger(__name__)
FP32 = "32-true"


def name_io(path: Path, info: ModelInfo) -> None:
    """Rename the graph's one input and output to `images` and `logits` (tf2onnx names the
    output after TensorFlow's Identity op) and add the metadata, in place."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    renames = {graph.input[0].name: "images", graph.output[0].name: "logits"}
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    graph.input[0].name, graph.output[0].name = "images", "logits"
    for key, value in info.as_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def images_per_second(session: OnnxClassifier, x: np.ndarray, batch: int,
                      seconds: float = 2.0) -> float:
    """onnxruntime's throughput at one batch size: warm, then as many batches as fit in
    `seconds` (at least three), from the test images."""
    batches = [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)] or [x[:batch]]
    session.logits(batches[0], batch)
    done, started = 0, time.perf_counter()
    while True:
        for b in batches:
            session.logits(b, batch)
            done += len(b)
            elapsed = time.perf_counter() - started
            if elapsed > seconds and done >= 3 * batch:
                return done / elapsed


def check(clf: Classifier, session: OnnxClassifier, run: FinishedRun, x: np.ndarray,
          tolerance: float, batch_size: int) -> dict[str, Any]:
    """The export against the framework on `x` (the run's test images)."""
    ours = session.logits(x, 256)
    fp32 = clf.logits(x, batch_size, FP32)
    as_trained = clf.logits(x, batch_size)  # at the run's precision, as its test_acc was
    return {
        "images": int(len(x)),
        "max_abs_logit_difference": float(np.abs(ours - fp32).max()) if len(x) else 0.0,
        "tolerance": tolerance,
        "predictions_differing_from_fp32": int((ours.argmax(1) != fp32.argmax(1)).sum()),
        "precision_trained": str(run.cfg.trainer.precision),
        "predictions_differing_from_trained_precision": int(
            (ours.argmax(1) != as_trained.argmax(1)).sum()),
    }


def export(run: FinishedRun, cfg: DictConfig) -> dict[str, Any]:
    checkpoint = run.checkpoint(cfg.checkpoint)
    splits = run.splits()
    spec = splits.spec
    clf = run.backend.load_classifier(run.cfg, spec, checkpoint)
    info = ModelInfo(classes=spec.classes, input_shape=spec.input_shape,
                     dark_background=dark_background(splits.x_train),
                     backend=run.backend.name, dataset=str(run.cfg.data.name))
    folder = run.dir / "export"
    folder.mkdir(exist_ok=True)
    path = folder / "model.onnx"
    tmp = folder / f".model.{os.getpid()}.tmp.onnx"
    try:
        started = time.perf_counter()
        clf.export_onnx(tmp, spec.input_shape)
        name_io(tmp, info)
        seconds = time.perf_counter() - started
        session = OnnxClassifier(tmp)
        report: dict[str, Any] = {"run": str(run.dir), "backend": run.backend.name,
                                  "checkpoint": str(checkpoint), "file": str(path),
                                  "export_seconds": round(seconds, 2)}
        if cfg.check:
            report |= check(clf, session, run, splits.x_test, cfg.tolerance,
                            run.cfg.data.eval_batch_size)
            if (report["predictions_differing_from_fp32"]
                    or report["max_abs_logit_difference"] > cfg.tolerance):
                raise DataError(
                    f"the ONNX export of {checkpoint} disagrees with {run.backend.name}: "
                    f"{report['predictions_differing_from_fp32']} of {report['images']} test "
                    f"predictions differ, largest logit difference "
                    f"{report['max_abs_logit_difference']:.2e} (tolerance={cfg.tolerance}); "
                    "nothing was written")
        x = splits.x_test if len(splits.x_test) else splits.x_train
        report["onnxruntime_images_per_second"] = {
            str(b): round(images_per_second(session, x, b), 1) for b in (1, 256)}
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    write_json_atomically(folder / "check.json", report)
    return report


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mnistlab export", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in report.items():
        table.add_row(key.replace("_", " "), str(value))
    Console().print(table)


def main(cfg: DictConfig) -> None:
    check_rules(cfg, field_rules(ExportConfig))
    for name in ("onnxscript", "onnx_ir", "tf2onnx"):  # their INFO lines: each pass they run
        logging.getLogger(name).setLevel(logging.WARNING)
    run = open_run(cfg.run)
    run.checkpoint(cfg.checkpoint)  # before anything is loaded: one line
    report = export(run, cfg)
    print_report(report)
