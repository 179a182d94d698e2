"""`python -m mnistlab.runs diff A B` on hand-built run directories: the config keys and the
provenance (commit, each part of machine, the data checksums) that differ, and what it says when
nothing does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mnistlab.runs import main
from mnistlab.runs.diff import diff_runs, load_pair
from tests.conftest import make_run

MACHINE = {"cpu": "Xeon", "cores": 2, "gpu": None, "python": "3.11.7", "torch": "2.5.1"}


DATA = {"train": "aa", "val": "bb", "test": "cc"}


def recorded(run: Path, commit: str, data: dict[str, str] = DATA, **machine: Any) -> Path:
    """Add the provenance a run of today's mnistlab records to a hand-built run."""
    path = run / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(commit=commit, machine={**MACHINE, **machine}, data_sha256=data)
    path.write_text(json.dumps(summary))
    return run


def test_diff_lists_the_differing_config_and_provenance(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = recorded(make_run(tmp_path / "a", lr=0.001), "abc123")
    b = recorded(make_run(tmp_path / "b", lr=0.01, settings={"logger.mode": "online"}),
                 "def456+dirty", data={**DATA, "test": "dd"}, gpu="H200")
    result = diff_runs(*load_pair(a, b))
    assert result.config == [
        {"key": "optimizer.lr", "A": "0.001", "B": "0.01", "note": ""},
        {"key": "logger.mode", "A": "offline", "B": "online", "note": "changes no result"},
    ]
    assert result.provenance == [
        {"key": "commit", "A": "abc123", "B": "def456+dirty", "note": ""},
        {"key": "machine.gpu", "A": "null", "B": "H200", "note": ""},
        {"key": "data_sha256.test", "A": "cc", "B": "dd", "note": ""},
    ]
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "config: 2 of" in out and "optimizer.lr" in out and "def456+dirty" in out
    assert "optimizer.name" not in out and "machine.cpu" not in out


def test_a_key_only_one_run_has_is_listed(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", optimizer="adam")
    b = make_run(tmp_path / "b", optimizer="sgd", settings={"model.extra": None})
    rows = {r["key"]: (r["A"], r["B"]) for r in diff_runs(*load_pair(a, b)).config or []}
    assert rows["optimizer.name"] == ("adam", "sgd")
    assert rows["optimizer.beta1"] == ("0.9", "(unset)")
    assert rows["optimizer.momentum"][0] == "(unset)"
    assert rows["model.extra"] == ("(unset)", "null")  # an absent key is not null


def test_the_same_runs_say_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = recorded(make_run(tmp_path / "a", seed=1), "abc123")
    b = recorded(make_run(tmp_path / "b", seed=1), "abc123")
    assert main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "config: the same (" in out and "provenance: the same" in out
    bare = make_run(tmp_path / "c", seed=1)  # from before summary.json recorded provenance
    assert main(["diff", str(bare), str(bare)]) == 0
    assert "provenance: neither run records it" in capsys.readouterr().out


def test_a_directory_that_is_no_run_is_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run(tmp_path / "a")
    with pytest.raises(SystemExit) as exit_:
        main(["diff", str(a), str(tmp_path)])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"error: diff: {tmp_path} is not a run directory (it has neither "
                    "summary.json nor .hydra/config.yaml)")
