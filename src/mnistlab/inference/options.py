"""The schemas of eval.py, predict.py and export.py (conf/eval.yaml, predict.yaml, export.yaml):
Hydra rejects a misspelt key or a wrong type before anything runs, and each field's range rule
is checked before a run is loaded. Light on purpose: the entry scripts import it before Hydra
composes their config, and predict.py on an ONNX file must import no ML framework."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from mnistlab.config.schema import PathsConfig, one_of, positive, ranged

SPLITS = ("train", "val", "test")
# each robustness transform's default strengths (inference/transforms.py says their units)
STRENGTHS = {"rotate": [0, 15, 30, 45], "shift": [0, 0.1, 0.2, 0.3],
             "noise": [0, 0.1, 0.2, 0.3], "hflip": [0, 1], "vflip": [0, 1]}
FORMATS = ("onnx",)


@dataclass
class EvalOptions:
    checkpoint: str = "best"  # best, last, or a checkpoint file of the run's backend
    data: str | None = None  # a conf/data option (same image shape and classes); null: the run's
    split: str = one_of("test", SPLITS)
    batch_size: int | None = ranged(None, check=lambda v: v is None or v >= 1,
                                    allowed="null (the run's data.eval_batch_size) or >= 1")
    ensemble: bool = False  # also the runs' averaged softmax outputs
    robustness: list[str] = field(default_factory=list)  # transforms: rotate, shift, noise, ...
    strengths: dict[str, list[float]] = field(default_factory=lambda: dict(STRENGTHS))
    seed: int = 0  # the noise transform's stream
    track: bool = True  # a W&B eval run for runs that were tracked


@dataclass
class EvalConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    run: Any = MISSING  # a run directory, a sweep directory, or a list of them
    eval: EvalOptions = field(default_factory=EvalOptions)


@dataclass
class PredictConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    inputs: Any = MISSING  # files, folders or globs: one string or a list
    run: str | None = None  # a run directory: its checkpoint, on its backend
    # or an .onnx file written by export.py (no ML framework needed); given as model=<file>
    onnx: str | None = None
    checkpoint: str = "best"  # with run=: best, last or a checkpoint file
    top: int = ranged(3, check=lambda v: v >= 1, allowed="top >= 1")  # classes listed per image


@dataclass
class ExportConfig:
    paths: PathsConfig = field(default_factory=PathsConfig)
    run: str = MISSING  # a run directory
    format: str = one_of("onnx", FORMATS)
    checkpoint: str = "best"  # best, last or a checkpoint file
    # the largest |logit difference| allowed between the export and the framework (both fp32)
    tolerance: float = positive(1e-3, "tolerance > 0")
    check: bool = True  # hold the export against the framework on the run's test set


def store_schemas() -> None:
    cs = ConfigStore.instance()
    for name, node in (("eval", EvalConfig), ("predict", PredictConfig),
                       ("export", ExportConfig)):
        cs.store(name=f"{name}_schema", node=node)
