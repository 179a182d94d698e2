"""A run directory belongs to one config: it is claimed on the first start, and a later start
with the same config resumes it (or skips it when it completed), never another run's.

Hydra itself rewrites `.hydra/` at every job start, which would overwrite the config of the run
that owns the directory before anyone could compare; so `hydra.output_subdir` is null in
conf/config.yaml and this module writes `.hydra/` (config.yaml, hydra.yaml, overrides.yaml) once
the start is known to belong there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from mnistlab.atomic import write_atomically
from mnistlab.config import flatten
from mnistlab.config.schema import as_current
from mnistlab.errors import ConfigError
from mnistlab.run.latest import LATEST, latest_unfinished, output_folder

# keys that change no result: they may differ between the starts of one run
NEUTRAL_KEYS = ("paths", "logger", "trainer.progress_bar", "data.dir", "data.mirrors",
                "data.download", "sweeps")
RAISABLE_KEY = "trainer.max_epochs"  # may be raised on resume, to train longer
MULTIRUN_FLAGS = frozenset({"-m", "--multirun"})


@dataclass(frozen=True)
class Previous:
    """What an earlier start left in the run directory."""

    status: str | None  # summary.json's status; None if it never got that far
    summary: dict[str, Any]
    raised: bool = False  # trainer.max_epochs is higher now: a completed run trains on


def _neutral(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in NEUTRAL_KEYS)


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """Flat and in today's keys: a run started before a key existed resumes."""
    return as_current(flatten(OmegaConf.to_container(cfg, resolve=True)))


def differences(stored: DictConfig, current: DictConfig) -> list[str]:
    """`key: stored -> current` for every result-changing key that differs (a raised
    trainer.max_epochs is allowed)."""
    old, new = _resolved(stored), _resolved(current)
    diffs = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        if a == b or _neutral(key):
            continue
        if key == RAISABLE_KEY and isinstance(a, int) and isinstance(b, int) and b > a:
            continue
        diffs.append(f"{key}: {a} -> {b}")
    return diffs


def read_previous(run_dir: Path, cfg: DictConfig) -> Previous | None:
    """The earlier start's state, or None for a new directory; ConfigError (one line) when the
    directory holds a run with another config, which must not be written into."""
    stored_path = run_dir / ".hydra" / "config.yaml"
    if not stored_path.is_file():
        return None
    try:
        stored = OmegaConf.load(stored_path)
        diffs = differences(stored, cfg)
    except Exception as e:  # an unreadable or unresolvable stored config is still not ours
        raise ConfigError(f"{run_dir} holds a run whose config cannot be read ({stored_path}: "
                          f"{type(e).__name__}); choose another directory") from None
    if diffs:
        raise ConfigError(f"{run_dir} holds another run (differs in {'; '.join(diffs)}); "
                          "choose another directory, or resume it without those overrides")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        summary = {}
    epochs = (OmegaConf.select(stored, RAISABLE_KEY), OmegaConf.select(cfg, RAISABLE_KEY))
    return Previous(status=summary.get("status"), summary=summary,
                    raised=None not in epochs and epochs[1] > epochs[0])


def save_job_config(run_dir: Path, cfg: DictConfig, hydra_cfg: DictConfig,
                    overrides: list[str]) -> None:
    """Hydra's `.hydra/` files, each written atomically."""
    folder = run_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / "config.yaml", OmegaConf.to_yaml(cfg))
    hydra_yaml = OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg}))
    write_atomically(folder / "hydra.yaml", hydra_yaml)
    write_atomically(folder / "overrides.yaml", yaml.safe_dump(list(overrides)))


def _stored_overrides(directory: Path) -> tuple[list[str], bool]:
    """The overrides that made the run (or sweep) in `directory`, and whether it is a sweep."""
    sweep_file, run_file = directory / "multirun.yaml", directory / ".hydra" / "overrides.yaml"
    if sweep_file.is_file():
        stored = OmegaConf.load(sweep_file).hydra.overrides
        own = ("hydra.sweep.dir=", "hydra.run.dir=", "hydra.mode=")
        return [*(o for o in stored.hydra if not o.startswith(own)), *stored.task], True
    if run_file.is_file():
        return list(yaml.safe_load(run_file.read_text()) or []), False
    raise ConfigError(f"resume={directory} is not a run or sweep directory (it has neither "
                      ".hydra/overrides.yaml nor multirun.yaml)")


def expand_resume(argv: list[str]) -> list[str]:
    """`resume=DIR` -> the overrides stored in DIR and its directory (hydra.run.dir, or with a
    sweep hydra.sweep.dir and --multirun); the user's other arguments follow, so they win, and
    any that contradict the stored config are refused when the run starts. `resume=latest`: DIR
    is the most recent unfinished run or sweep under the output folder (see `latest_unfinished`);
    a directory named latest is `resume=./latest`."""
    resume = [a for a in argv if a.startswith("resume=")]
    if not resume:
        return argv
    flags = [a for a in argv if a.startswith("-")]  # Hydra's parser wants them first
    rest = [a for a in argv if not a.startswith(("-", "resume="))]
    multirun = bool(MULTIRUN_FLAGS & set(flags))
    value = resume[-1].removeprefix("resume=")
    directory = (latest_unfinished(output_folder(rest), sweeps_only=multirun) if value == LATEST
                 else Path(value).expanduser().resolve())
    stored, sweep = _stored_overrides(directory)
    given = {a.split("=", 1)[0] for a in rest}
    if sweep and not multirun:
        flags.append("--multirun")
    place = f"hydra.sweep.dir={directory}" if sweep else f"hydra.run.dir={directory}"
    return [*flags, *(o for o in stored if o.split("=", 1)[0] not in given), *rest, place]
