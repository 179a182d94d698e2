"""`python -m mnistlab.runs diff A B`: what tells two runs apart. First the resolved config keys
whose values differ (a key only one run has included), then the provenance summary.json
records: the code's ``commit``, each part of the ``machine`` (CPU, cores, GPU, Python and
the frameworks' versions) and ``data_sha256``, the checksums of the train, validation and test
images and labels the run used (runs from before it was recorded lack it: their data is told
apart only by the data.* config keys).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab.config import flatten
from mnistlab.errors import MnistlabError
from mnistlab.report.factors import comparable, is_result_key, level_of
from mnistlab.report.runs import Run, load_run

# summary.json's keys saying what produced the run
PROVENANCE = ("commit", "machine", "data_sha256")
DIFF_COLUMNS = ["key", "A", "B", "note"]


@dataclass(frozen=True)
class RunDiff:
    """The differing keys as rows of DIFF_COLUMNS; ``config`` is None when a run's config
    cannot be read (``unreadable`` says whose), ``provenance`` when neither run records it."""

    config: list[dict[str, str]] | None
    provenance: list[dict[str, str]] | None
    compared: int  # config keys compared
    unreadable: list[str]


def load_pair(a: Path, b: Path) -> tuple[Run, Run]:
    """Both runs, read as the report reads them; one line for a directory that is no run."""
    for path in (a, b):
        if not ((path / "summary.json").is_file() or (path / ".hydra" / "config.yaml").is_file()):
            raise MnistlabError(f"diff: {path} is not a run directory (it has neither "
                                "summary.json nor .hydra/config.yaml)")
    return load_run(a.resolve(), a.resolve()), load_run(b.resolve(), b.resolve())


def diff_runs(a: Run, b: Run) -> RunDiff:
    """The config keys, then the provenance keys, whose values differ between ``a`` and ``b``."""
    unreadable = [side for side, run in (("A", a), ("B", b)) if run.config is None]
    config = None
    if a.config is not None and b.config is not None:
        config = _differing(a.config, b.config)
    recorded = [flatten({k: r.summary[k] for k in PROVENANCE if k in r.summary}) for r in (a, b)]
    provenance = _differing(*recorded) if any(recorded) else None
    compared = len({*(a.config or {}), *(b.config or {})})
    return RunDiff(config, provenance, compared, unreadable)


def _differing(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, str]]:
    """A row per key whose value differs, in A's key order then B's; an absent key is not
    null, and a key that changes no result (paths, logger, ...) says so."""
    keys = list(dict.fromkeys([*a, *b]))
    return [
        {"key": k, "A": level_of(a, k), "B": level_of(b, k),
         "note": "" if is_result_key(k) else "changes no result"}
        for k in keys if comparable(a, [k]) != comparable(b, [k])
    ]  # fmt: skip
