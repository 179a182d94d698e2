"""The seam between the framework and a training backend: one `Backend` object per backend.

A backend is its config option (`backend=<name>`, with its own schema and checks) and a package
of framework code imported only when used: `<package>.trainer.fit` trains a run,
`<package>.components` builds the model, augmentation, optimizer and schedule from the config
(for the trainer and the bench's bare loop alike) and holds the registries of those builders,
and `<package>.bare.loop` is the bench's yardstick; `<package>.inference.load` gives a finished
run's network back from a checkpoint (eval, predict, export). So TensorFlow is imported only for
a Keras run, and torch only for a Lightning one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mnistlab.config.checks import check_rules, field_rules
from mnistlab.data import Splits
from mnistlab.data.catalog import DatasetSpec
from mnistlab.registry import Registry
from mnistlab.training.contract import Classifier, FitResult, RunContext, Timings


def _no_checks(cfg: DictConfig) -> None:
    return None


@dataclass(frozen=True)
class Backend:
    name: str  # the option of the backend group (conf/backend/<name>.yaml)
    schema: type  # that option's structured-config schema, with its range rules
    package: str  # where its framework code lives
    packages: tuple[str, ...]  # the distributions it trains with, whose versions a run records
    checkpoint_suffix: str  # its checkpoints' files: checkpoints/{best,last}<suffix>
    checks: Callable[[DictConfig], None] = field(default=_no_checks)  # its cross-key checks

    def check(self, cfg: DictConfig) -> None:
        """Its keys' range rules, then what it cannot run (ConfigError, one line)."""
        check_rules(cfg, field_rules(self.schema, "backend."))
        self.checks(cfg)

    def fit(self, cfg: DictConfig, data: Splits, ctx: RunContext) -> FitResult:
        return import_module(f"{self.package}.trainer").fit(cfg, data, ctx)

    def bare_loop(self, cfg: DictConfig, data: Splits) -> Timings:
        return import_module(f"{self.package}.bare").loop(cfg, data)

    def load_classifier(self, cfg: DictConfig, spec: DatasetSpec, checkpoint: Path) -> Classifier:
        """A finished run's network with the checkpoint's weights (imports the framework)."""
        return import_module(f"{self.package}.inference").load(cfg, spec, checkpoint)

    def registries(self) -> dict[str, Registry[Any]]:
        """Config group -> the registry of its builders on this backend (imports the framework)."""
        return import_module(f"{self.package}.components").registries()
