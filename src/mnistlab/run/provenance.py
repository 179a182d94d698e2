"""Where a result came from: the code's git commit and the machine. Every run records both in
its summary.json and the report states them, so a committed result names what produced it."""

from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from collections import Counter
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from mnistlab.backends import framework_packages
from mnistlab.config import REPO_ROOT
from mnistlab.training.threads import cores

PACKAGES = framework_packages()


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_commit() -> str | None:
    """HEAD of the checkout mnistlab runs from, "+dirty" when tracked files differ from it;
    None outside a git checkout (an installed copy)."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return None
    return head + ("+dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def _package(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine(dated: bool = False) -> dict[str, Any]:
    """The CPU, the cores this process may use, the GPU, Python and the frameworks' versions."""
    cpuinfo = Path("/proc/cpuinfo")
    models = ([line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
               if line.startswith("model name")] if cpuinfo.exists() else [])
    gpu = None
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):  # a hung driver: no name
            done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=10)
            gpu = done.stdout.strip().splitlines()[0] if done.stdout.strip() else None
    about = {"cpu": models[0] if models else platform.processor(), "cores": cores(), "gpu": gpu,
             "python": platform.python_version(), **{p: _package(p) for p in PACKAGES}}
    if dated:
        about["date"] = datetime.now().astimezone().isoformat(timespec="seconds")
    return about


def sweep_command(sweep_dir: Path) -> str | None:
    """The command line that ran a sweep, from Hydra's multirun.yaml in its directory."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists():
        return None
    overrides = OmegaConf.select(OmegaConf.load(path), "hydra.overrides")
    if overrides is None:  # not written by Hydra
        return None
    return " ".join(["python train.py -m", *overrides.get("hydra", []),
                     *overrides.get("task", [])])


def _machine_line(about: dict[str, Any]) -> str:
    packages = ", ".join(f"{p} {about[p]}" for p in PACKAGES if about.get(p))
    return (f"{about.get('cpu')}, {about.get('cores')} cores, GPU {about.get('gpu') or 'none'}; "
            f"Python {about.get('python')}, {packages}")


def provenance_lines(sweep_dirs: list[Path], summaries: list[dict[str, Any]]) -> list[str]:
    """report.md's account of what produced it: the sweep command(s), the commits and machines
    the runs recorded in summary.json (runs from before mnistlab recorded them are counted as
    not recorded), and the commit and date of the report itself."""
    lines = [f"- command: `{command}`" for d in sweep_dirs if (command := sweep_command(d))]
    commits = Counter(f"`{s['commit']}`" if s.get("commit") else "not recorded"
                      for s in summaries)
    machines = Counter(_machine_line(s["machine"]) if isinstance(s.get("machine"), dict)
                       else "not recorded" for s in summaries)
    lines += [f"- runs trained at commit: {c} ({n} runs)" for c, n in commits.items()]
    lines += [f"- runs trained on: {m} ({n} runs)" for m, n in machines.items()]
    now = datetime.now().astimezone().isoformat(timespec="seconds")
    lines.append(f"- this report: written {now} at commit `{code_commit() or 'unknown'}`, on "
                 f"{_machine_line(machine())}")
    return lines
