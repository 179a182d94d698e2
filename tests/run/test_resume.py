"""Resuming in this process: a run directory is bound to its config (only trainer.max_epochs may
be raised), an unreadable checkpoint is one error line, resume= expands to the stored overrides.
Runs killed and resumed: tests/processes/test_resume_after_kill.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mnistlab.run.rundir import expand_resume
from tests.conftest import metric_rows, train_here


def test_a_directory_of_another_run_is_never_written_into(tiny_data: Path,
                                                          tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    done = train_here(*base, "optimizer.lr=0.01", "model.dropout=0.3", output=tmp_path)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {run} holds another run")
    assert "optimizer.lr: 0.0001 -> 0.01" in line and "model.dropout: 0.2 -> 0.3" in line
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_max_epochs_may_be_raised_and_nothing_else(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    lower = train_here(f"resume={run}", "trainer.max_epochs=1", output=tmp_path)
    assert lower.returncode == 2 and "trainer.max_epochs: 2 -> 1" in lower.stderr
    longer = train_here(f"resume={run}", "trainer.max_epochs=3", output=tmp_path)
    assert longer.returncode == 0, longer.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["epochs_completed"], summary["resumed_from_epoch"]) == (3, 2)
    assert [r["epoch"] for r in metric_rows(run)] == ["1", "2", "3"]


def test_a_run_from_before_a_key_existed_resumes(tiny_data: Path, tmp_path: Path) -> None:
    """A stored config without the keys added since (model.batch_norm, bn_eps, bn_momentum),
    as an older mnistlab wrote it, is the same run at their defaults, and another at others."""
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    stored = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(stored.read_text())
    for key in ("batch_norm", "bn_eps", "bn_momentum"):
        del config["model"][key]
    stored.write_text(yaml.safe_dump(config))
    other = train_here(f"resume={run}", "model.batch_norm=true", output=tmp_path)
    assert other.returncode == 2 and "model.batch_norm: False -> True" in other.stderr
    longer = train_here(f"resume={run}", "trainer.max_epochs=3", output=tmp_path)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["resumed_from_epoch"] == 2


@pytest.mark.parametrize(("backend", "checkpoint"), [("lightning", "last.ckpt"),
                                                     ("keras", "last.keras")])
def test_an_unreadable_checkpoint_is_one_line_naming_it(backend: str, checkpoint: str,
                                                        tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = ("trainer=debug", "data.val_size=100", f"paths.data={tiny_data}", "logger=none",
            f"backend={backend}", f"hydra.run.dir={run}")
    assert train_here(*base, output=tmp_path).returncode == 0
    (run / "checkpoints" / checkpoint).write_bytes(b"truncated")
    done = train_here(f"resume={run}", "trainer.max_epochs=3", output=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: cannot resume from checkpoint")
    assert str(run / "checkpoints" / checkpoint) in lines[-1] and "Traceback" not in done.stderr


def test_resume_expands_to_the_stored_overrides(tmp_path: Path) -> None:
    run, sweep = tmp_path / "run", tmp_path / "sweep"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- optimizer=sgd\n- trainer.max_epochs=2\n")
    assert expand_resume([f"resume={run}", "trainer.max_epochs=5"]) == [
        "optimizer=sgd", "trainer.max_epochs=5", f"hydra.run.dir={run}"]
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    hydra:\n    - hydra.mode=MULTIRUN\n    - hydra/launcher=joblib\n"
        "    task:\n    - optimizer=adam,rmsprop\n")
    assert expand_resume([f"resume={sweep}"]) == [
        "--multirun", "hydra/launcher=joblib", "optimizer=adam,rmsprop",
        f"hydra.sweep.dir={sweep}"]
    assert expand_resume(["optimizer=sgd"]) == ["optimizer=sgd"]
