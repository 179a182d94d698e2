"""Evaluate a finished run's checkpoint again: `python eval.py run=<run dir> [eval.key=value ...]`,
`-m run=a,b` for several; mnistlab/inference/evaluate.py says what it writes."""

from omegaconf import DictConfig

from mnistlab.inference.options import store_schemas
from mnistlab.run.app import run_app


def evaluate(cfg: DictConfig) -> float:
    """Imports the evaluation stack only now, so that --help and config errors answer at once."""
    from mnistlab.inference.evaluate import main

    return main(cfg)


if __name__ == "__main__":
    store_schemas()
    run_app(evaluate, "eval", discard_on_error=True)
