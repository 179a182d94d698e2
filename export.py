"""Export a finished run's network: `python export.py run=<run dir> [format=onnx]`, written to
<run dir>/export/model.onnx and checked in onnxruntime (mnistlab/inference/export.py)."""

from omegaconf import DictConfig

from mnistlab.inference.options import store_schemas
from mnistlab.run.app import run_app


def export(cfg: DictConfig) -> None:
    """Imports the export stack only now, so that --help and config errors answer at once."""
    from mnistlab.inference.export import main

    main(cfg)


if __name__ == "__main__":
    store_schemas()
    run_app(export, "export", discard_on_error=True)
