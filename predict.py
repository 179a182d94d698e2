"""Classify images with a finished run: `python predict.py run=<run dir> inputs=<files, folders
or globs>`, or `model=<file.onnx>` with neither torch nor TensorFlow
(mnistlab/inference/predict.py)."""

import sys

from omegaconf import DictConfig

from mnistlab.inference.options import store_schemas
from mnistlab.run.app import run_app


def predict(cfg: DictConfig) -> None:
    """Imports the prediction stack only now, so that --help and config errors answer at once."""
    from mnistlab.inference.predict import main

    main(cfg)


def onnx_model_key(argv: list[str]) -> list[str]:
    """`model=<file.onnx>` is the documented spelling, but conf/ has a `model` config group, and
    Hydra reads any `model=` override as choosing one of its options; the key is `onnx`."""
    return [f"onnx={a.removeprefix('model=')}" if a.startswith("model=") else a for a in argv]


if __name__ == "__main__":
    sys.argv[1:] = onnx_model_key(sys.argv[1:])
    store_schemas()
    run_app(predict, "predict", discard_on_error=True)
