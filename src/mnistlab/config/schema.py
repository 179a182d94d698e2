"""Structured config schemas: every key's type, default and allowed range, written once.

Hydra checks keys and types against these when it composes the config, so a misspelt key or a
string where a number belongs fails before anything runs. A field's `allowed` metadata (made by
`ranged`) is the range rule that `mnistlab.config.checks` applies before any data is read, with
its words for the one-line error. The YAML files under conf/ only select a schema and override
what differs for that option (plain dataclass metadata rather than pydantic or attrs: Hydra's
structured configs take dataclasses, and a predicate with its wording is all a rule needs).

The backends' own option schemas (conf/backend/*.yaml) live with each backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING


def ranged(default: Any = NO_DEFAULT, *, check: Callable[[Any], bool], allowed: str,
           factory: Callable[[], Any] | None = None) -> Any:
    """A field with its default and its range rule: `check(value)` must hold, else the error
    says `<key>=<value> is not allowed; expected <allowed>`."""
    meta = {"check": check, "allowed": allowed}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def one_of(default: Any, choices: tuple[str, ...]) -> Any:
    return ranged(default, check=lambda v: v in choices, allowed=f"one of {', '.join(choices)}")


def optional_count(default: int | None = None) -> Any:
    """null or an integer >= 1."""
    return ranged(default, check=lambda v: v is None or v >= 1, allowed="null or an integer >= 1")


def fraction(default: float, allowed: str, *, low_open: bool = False) -> Any:
    """0 <= v < 1 (or 0 < v < 1 with low_open)."""
    if low_open:
        return ranged(default, check=lambda v: 0 < v < 1, allowed=allowed)
    return ranged(default, check=lambda v: 0 <= v < 1, allowed=allowed)


def positive(default: float, allowed: str) -> Any:
    return ranged(default, check=lambda v: v > 0, allowed=allowed)


def non_negative(default: float, allowed: str) -> Any:
    return ranged(default, check=lambda v: v >= 0, allowed=allowed)


def probability(default: float) -> Any:
    return ranged(default, check=lambda v: 0 <= v <= 1, allowed="a probability, 0 <= p <= 1")


@dataclass
class PathsConfig:
    root: str = MISSING
    data: str = MISSING
    output: str = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    format: str = MISSING  # the loader (data/formats/): idx, image_folder, npz, digits
    dir: str | None = None  # idx and image_folder: the folder of the files
    path: str | None = None  # npz: the file
    mirrors: list[str] = field(default_factory=list)  # idx: tried in order, md5-checked
    download: bool = True  # idx: fetch missing files from the mirrors
    # image_folder: [height, width] to resize every image to; null: they must share one size
    image_size: list[int] | None = ranged(
        None, check=lambda v: v is None or (len(v) == 2 and min(v) >= 1),
        allowed="null or [height, width] of integers >= 1")
    # image_folder: 1 (grayscale) or 3 (RGB); null: 1 when every image is grayscale
    channels: int | None = ranged(None, check=lambda v: v in (None, 1, 3),
                                  allowed="null, 1 or 3")
    # taken from the training images, stratified: below 1 a share of them, else a count
    val_size: float = ranged(0.1, check=lambda v: 0 < v < 1 or (v >= 1 and v == int(v)),
                             allowed="a share 0 < val_size < 1 or a whole count >= 1")
    # only for data without a test part (digits, an image folder without test/, an npz without
    # x_test): the share or count of all images held out for the test, stratified
    test_size: float = ranged(0.2, check=lambda v: 0 < v < 1 or (v >= 1 and v == int(v)),
                              allowed="a share 0 < test_size < 1 or a whole count >= 1")
    # train_test_split's random_state: the same split on every run and backend
    split_seed: int = ranged(42, check=lambda v: 0 <= v < 2**32, allowed="0 <= split_seed < 2**32")
    train_subset: int | None = optional_count()  # keep only the first N training samples
    batch_size: int = ranged(50, check=lambda v: v >= 1, allowed="batch_size >= 1")
    # validation and test batches; does not change the result. 250 keeps the study CNN's
    # float32 activations under glibc's 32 MB mmap threshold: larger ones are fresh pages, zeroed
    # by the kernel at every batch (a validation pass at 1000 took 2.7 times as long on torch)
    eval_batch_size: int = ranged(250, check=lambda v: v >= 1, allowed="eval_batch_size >= 1")


@dataclass
class ModelConfig:
    """The base of the model options' schemas; the input shape and class count come from the
    dataset."""

    name: str = MISSING


@dataclass
class BatchNormConfig(ModelConfig):
    """Batch normalisation's numbers, for the models that have it, in torch's conventions."""

    bn_eps: float = positive(1e-5, "bn_eps > 0")  # torch's default; Keras' is 1e-3
    # torch's convention: running = (1 - m) * running + m * batch (Keras' momentum is 1 - m)
    bn_momentum: float = fraction(0.1, "0 < bn_momentum < 1", low_open=True)


@dataclass
class CNNConfig(BatchNormConfig):
    """Conv-ReLU-MaxPool per entry of channels -> Flatten -> Dropout -> Dense-ReLU ->
    Dense(classes); with batch_norm, Conv-MaxPool-BN-ReLU."""

    channels: list[int] = ranged(check=lambda v: len(v) >= 1 and all(c >= 1 for c in v),
                                 allowed="a list of ints >= 1", factory=lambda: [32, 64])
    kernel_size: int = ranged(3, check=lambda v: v >= 1, allowed="kernel_size >= 1")
    # valid: no padding, each conv shrinks the image by kernel_size - 1; same: zeros keep its size
    padding: str = one_of("valid", ("valid", "same"))
    dense_units: int = ranged(128, check=lambda v: v >= 1, allowed="dense_units >= 1")
    dropout: float = fraction(0.2, "0 <= dropout < 1")  # before the hidden dense layer
    # batch normalisation of each pooled map, before its ReLU (the convolutions lose their bias)
    batch_norm: bool = False


@dataclass
class MLPConfig(ModelConfig):
    """Flatten -> Dense-ReLU-Dropout per entry of hidden -> Dense(classes)."""

    # [] is a linear model (multinomial logistic regression)
    hidden: list[int] = ranged(check=lambda v: all(h >= 1 for h in v),
                               allowed="a list of ints >= 1", factory=lambda: [256, 128])
    dropout: float = fraction(0.2, "0 <= dropout < 1")  # after each hidden layer


@dataclass
class ResNetConfig(BatchNormConfig):
    """3x3 stem conv -> `blocks` basic residual blocks per entry of widths (stride 2 from the
    second stage on) -> global average pooling -> Dense(classes)."""

    widths: list[int] = ranged(check=lambda v: len(v) >= 1 and all(w >= 1 for w in v),
                               allowed="a list of ints >= 1", factory=lambda: [16, 32, 64])
    blocks: int = ranged(2, check=lambda v: v >= 1, allowed="blocks >= 1")  # per stage


@dataclass
class OptimizerConfig:
    name: str = MISSING
    lr: float = positive(1e-4, "lr > 0")


@dataclass
class AdamConfig(OptimizerConfig):
    beta1: float = fraction(0.9, "0 <= beta1 < 1")
    beta2: float = fraction(0.999, "0 <= beta2 < 1")
    eps: float = positive(1e-7, "eps > 0")  # Keras' default; torch's is 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    weight_decay: float = non_negative(0.01, "weight_decay >= 0")  # decoupled, not in the loss


@dataclass
class RMSpropConfig(OptimizerConfig):
    rho: float = fraction(0.9, "0 <= rho < 1")  # moving-average decay (torch calls it alpha)
    eps: float = positive(1e-7, "eps > 0")
    momentum: float = fraction(0.0, "0 <= momentum < 1")


@dataclass
class SGDConfig(OptimizerConfig):
    momentum: float = fraction(0.0, "0 <= momentum < 1")
    nesterov: bool = False


@dataclass
class AugConfig:
    name: str = MISSING


@dataclass
class FlipConfig(AugConfig):
    horizontal_p: float = probability(0.5)
    vertical_p: float = probability(0.5)


@dataclass
class ShiftRotateConfig(AugConfig):
    rotation_degrees: float = ranged(20.0, check=lambda v: 0 <= v <= 180,
                                     allowed="0 <= degrees <= 180")
    shift_x: float = fraction(0.1, "a fraction of the width, 0 <= shift < 1")
    shift_y: float = fraction(0.1, "a fraction of the height, 0 <= shift < 1")


@dataclass
class SchedulerConfig:
    name: str = MISSING


@dataclass
class CosineConfig(SchedulerConfig):
    min_lr: float = non_negative(0.0, "min_lr >= 0")
    warmup_epochs: int = non_negative(0, "warmup_epochs >= 0")


@dataclass
class OneCycleConfig(SchedulerConfig):
    max_lr: float = positive(1e-3, "max_lr > 0")
    pct_start: float = fraction(0.3, "0 < pct_start < 1", low_open=True)
    div_factor: float = positive(25.0, "div_factor > 0")
    final_div_factor: float = positive(1e4, "final_div_factor > 0")


@dataclass
class RegularizationConfig:
    name: str = MISSING
    weight: float = non_negative(0.0, "weight >= 0")


@dataclass
class BackendConfig:
    """The base of each backend's option schema (`mnistlab.backends`)."""

    name: str = MISSING


PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


@dataclass
class TrainerConfig:
    max_epochs: int = ranged(25, check=lambda v: v >= 1, allowed="max_epochs >= 1")
    seed: int = ranged(42, check=lambda v: 0 <= v < 2**32, allowed="0 <= seed < 2**32")
    accelerator: str = one_of("auto", ACCELERATORS)  # the same choice on both backends
    # N: N processes (Lightning DDP) or replicas (Keras MirroredStrategy)
    devices: Any = ranged("auto", check=lambda v: v == "auto" or (isinstance(v, int) and v >= 1),
                          allowed="auto or an integer >= 1")
    # Lightning: machines of `devices` processes each (Slurm, torchrun)
    num_nodes: int = ranged(1, check=lambda v: v >= 1, allowed="num_nodes >= 1")
    # CPU threads (torch, TensorFlow, BLAS); null: the cores shared by the jobs running at once
    threads: int | None = optional_count()
    # stop after the first epoch whose val_acc reaches this (e.g. 0.99)
    stop_at_val_acc: float | None = ranged(None, check=lambda v: v is None or 0 < v <= 1,
                                           allowed="null or 0 < accuracy <= 1")
    precision: str = ranged("32-true", check=lambda v: str(v) in PRECISIONS,
                            allowed=f"one of {', '.join(PRECISIONS)}")
    deterministic: bool = True  # identical metrics for the same seed on CPU
    progress_bar: bool = True
    limit_train_batches: int | None = optional_count()  # train on only this many batches an epoch
    limit_val_batches: int | None = optional_count()
    limit_test_batches: int | None = optional_count()


@dataclass
class MlflowSettings:
    # null: a local store, SQLite in <paths.output>/mlflow/ (its artifacts beside it); or a server
    tracking_uri: str | None = None
    experiment: str = "mnistlab"


TRACKER_NAMES = ("mlflow", "tensorboard")  # what logger.extra may add (mnistlab.run.trackers)


@dataclass
class LoggerConfig:
    name: str = MISSING
    # trackers beside logger.name, e.g. [mlflow, tensorboard] with logger=wandb
    extra: list[str] = ranged(check=lambda v: all(x in TRACKER_NAMES for x in v),
                              allowed=f"a list of {', '.join(TRACKER_NAMES)}", factory=list)
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)


WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class WandbConfig(LoggerConfig):
    project: str = "mnistlab"
    entity: str | None = None
    # offline: no account, no prompt, no network; `wandb sync` later
    mode: str = one_of("${oc.env:WANDB_MODE,offline}", WANDB_MODES)
    group: str | None = None  # set by sweeps so their jobs group in the W&B UI
    run_name: str | None = None  # default: the run's overrides
    job_type: str | None = None  # default: the backend
    tags: list[str] = field(default_factory=list)  # added to the backend, optimizer, aug... tags


@dataclass
class OptunaTrialConfig:
    """Set by the Optuna sweeper (sweeps=optuna) when it prunes: where the job's trial lives, so
    that the job reports each epoch to it (mnistlab.training.pruning). null: not a trial."""

    storage: str | None = None  # a database URL or journal:<file>
    study: str | None = None
    trial: int | None = None


@dataclass
class Config:
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    aug: AugConfig = MISSING
    regularization: RegularizationConfig = MISSING
    backend: BackendConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    experiment: str | None = None
    optuna: OptunaTrialConfig = field(default_factory=OptunaTrialConfig)


# group -> option -> schema; the backend group's schemas are the backends' (config.store)
SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"data": DataConfig},
    "model": {"cnn": CNNConfig, "mlp": MLPConfig, "resnet": ResNetConfig},
    "optimizer": {"adam": AdamConfig, "adamw": AdamWConfig, "rmsprop": RMSpropConfig,
                  "sgd": SGDConfig},
    "scheduler": {"none": SchedulerConfig, "cosine": CosineConfig, "onecycle": OneCycleConfig},
    "aug": {"none": AugConfig, "flip": FlipConfig, "hflip": FlipConfig,
            "shift_rotate": ShiftRotateConfig},
    "regularization": {"regularization": RegularizationConfig},
    "trainer": {"trainer": TrainerConfig},
    "logger": {"wandb": WandbConfig, "csv": LoggerConfig, "none": LoggerConfig,
               "mlflow": LoggerConfig, "tensorboard": LoggerConfig},
}


# What an absent key means in a config written before the key existed (a run directory's
# stored config, an old run in a report): what the code that wrote it did.
ABSENT_MEANS: dict[str, Any] = {
    "scheduler.name": "none",
    "model.batch_norm": CNNConfig.batch_norm,
    "model.bn_eps": BatchNormConfig.bn_eps,
    "model.bn_momentum": BatchNormConfig.bn_momentum,
}
# Keys of earlier configs that are no setting any more: model.num_classes (mnistlab's first
# versions recorded it; the data now gives the class count)
RETIRED_KEYS = frozenset({"model.num_classes"})


def as_current(flat: dict[str, Any]) -> dict[str, Any]:
    """A flattened config of any mnistlab version in today's keys (ABSENT_MEANS filled in,
    RETIRED_KEYS dropped), so that comparing old and new configs sees no difference that never
    was: an interrupted run resumes, and a report over both sees no false factor."""
    return {k: v for k, v in {**ABSENT_MEANS, **flat}.items() if k not in RETIRED_KEYS}
