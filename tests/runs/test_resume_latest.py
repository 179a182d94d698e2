"""`train.py resume=latest`: expand_resume picks the most recent unfinished run or sweep under
the output folder, on hand-built directories whose modification times are set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from mnistlab.config import REPO_ROOT
from mnistlab.errors import ConfigError
from mnistlab.run.latest import output_folder
from mnistlab.run.rundir import expand_resume

SWEEP_YAML = {"hydra": {"job": {"name": "train"}, "overrides": {
    "hydra": ["hydra.mode=MULTIRUN"], "task": ["optimizer=adam,sgd"]}}}


def touch(directory: Path, when: float) -> Path:
    os.utime(directory, (when, when))
    return directory


def fake_run(directory: Path, status: str | None, when: float, job: str = "train") -> Path:
    """A run directory as train.py leaves it: .hydra/ and, unless status is None, summary.json."""
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text("- optimizer=sgd\n")
    (directory / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"job": {"name": job}}}))
    if status is not None:
        (directory / "summary.json").write_text(json.dumps({"status": status}))
    return touch(directory, when)


def fake_sweep(directory: Path, statuses: list[str | None], when: float) -> Path:
    directory.mkdir(parents=True)
    (directory / "multirun.yaml").write_text(yaml.safe_dump(SWEEP_YAML))
    for job, status in enumerate(statuses):
        fake_run(directory / str(job), status, when)
    return touch(directory, when)


def resumed(out: Path, *flags: str) -> list[str]:
    return expand_resume([*flags, "resume=latest", f"paths.output={out}"])


@pytest.mark.parametrize("status", ["running", "interrupted", "failed", None])
def test_the_newest_unfinished_run_by_modification_time(tmp_path: Path, status: str | None,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "outputs"
    # named newest, touched longest ago: the modification time decides, not the name
    fake_run(out / "runs" / "2026-01-03_00-00-00_000000", "interrupted", 1_000)
    picked = fake_run(out / "runs" / "2026-01-01_00-00-00_000000", status, 2_000)
    fake_run(out / "runs" / "2026-01-02_00-00-00_000000", "completed", 3_000)
    fake_run(out / "eval" / "2026-01-04_00-00-00_000000", None, 4_000, job="eval")
    assert resumed(out) == ["optimizer=sgd", f"paths.output={out}", f"hydra.run.dir={picked}"]
    assert capsys.readouterr().err == f"resume=latest: {picked} ({status or 'no summary.json'})\n"


def test_an_unfinished_sweep_resumes_as_a_sweep(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    fake_run(out / "runs" / "a", "failed", 1_000)
    sweep = fake_sweep(out / "multirun" / "b", ["completed", "interrupted", None], 2_000)
    fake_sweep(out / "multirun" / "c", ["completed", "pruned"], 3_000)  # pruned: on purpose
    fake_run(out / "runs" / "d", "completed", 4_000)
    assert resumed(out) == ["--multirun", "optimizer=adam,sgd", f"paths.output={out}",
                            f"hydra.sweep.dir={sweep}"]


def test_multirun_takes_the_newest_unfinished_sweep_only(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    sweep = fake_sweep(out / "multirun" / "a", ["completed", "failed"], 1_000)
    fake_run(out / "runs" / "b", "interrupted", 2_000)
    assert resumed(out, "-m") == ["-m", "optimizer=adam,sgd", f"paths.output={out}",
                                  f"hydra.sweep.dir={sweep}"]
    assert resumed(out)[-1] == f"hydra.run.dir={out / 'runs' / 'b'}"


def test_nothing_unfinished_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "outputs"
    fake_run(out / "runs" / "a", "completed", 1_000)
    fake_sweep(out / "multirun" / "b", ["completed"], 2_000)
    with pytest.raises(ConfigError) as error:
        resumed(out)
    assert str(error.value) == f"resume=latest: no unfinished run or sweep under {out}"
    fake_run(out / "runs" / "c", "failed", 3_000)
    with pytest.raises(ConfigError, match="no unfinished sweep under"):
        resumed(out, "--multirun")


def test_the_output_folder_follows_the_command_line(tmp_path: Path) -> None:
    assert output_folder([]) == REPO_ROOT / "outputs"
    assert output_folder([f"paths.root={tmp_path}"]) == tmp_path / "outputs"
    assert output_folder([f"paths.output={tmp_path}/a", f"++paths.output={tmp_path}/b"]) == (
        tmp_path / "b")
