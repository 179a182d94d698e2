"""run/lock.py: one start at a time per run or sweep directory, stale locks taken over, and
run_job holding its directory's lock. Two real train.py processes:
tests/processes/test_lock_processes.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hydra.types import RunMode
from omegaconf import OmegaConf

from mnistlab.config import REPO_ROOT
from mnistlab.errors import ConfigError
from mnistlab.run import lifecycle
from mnistlab.run.lifecycle import Tracking, run_job
from mnistlab.run.lock import LOCK_NAME, STALE_AFTER, DirLock, LockError, SweepLock, _pidspace
from mnistlab.training.interrupts import RunInterrupted

HOST = socket.gethostname()


def stamp(seconds_ago: float = 0.0) -> str:
    return (datetime.now().astimezone() - timedelta(seconds=seconds_ago)).isoformat(
        timespec="milliseconds")


def write_lock(directory: Path, *, host: str = HOST, pid: int = 1234, heartbeat_age: float = 0.0,
               token: str = "stale0token", pidspace: str | None = None) -> Path:
    """A `.lock` as another start leaves it (by default: this machine, this pid space)."""
    directory.mkdir(parents=True, exist_ok=True)
    record = {"host": host, "pid": pid, "started": stamp(heartbeat_age + 60),
              "heartbeat": stamp(heartbeat_age), "token": token,
              "pidspace": _pidspace() if pidspace is None else pidspace}
    (directory / LOCK_NAME).write_text(json.dumps(record))
    return directory / LOCK_NAME


def dead_pid() -> int:
    """The pid of a process that has ended."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def lock_record(directory: Path) -> dict:
    return json.loads((directory / LOCK_NAME).read_text())


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(f"{LOCK_NAME}*"))


# ---------------------------------------------------------------- acquire and release


def test_acquire_writes_who_holds_it_and_release_removes_it(tmp_path: Path) -> None:
    lock = DirLock(tmp_path).acquire()
    record = lock_record(tmp_path)
    assert (record["host"], record["pid"], record["token"]) == (HOST, os.getpid(), lock.token)
    assert datetime.fromisoformat(record["started"]) <= datetime.now().astimezone()
    assert datetime.fromisoformat(record["heartbeat"]) >= datetime.fromisoformat(
        record["started"])
    lock.release()
    assert leftovers(tmp_path) == []
    lock.release()  # idempotent
    assert DirLock(tmp_path).acquire().held  # free again


def test_a_second_start_is_refused_naming_the_holder(tmp_path: Path, capsys) -> None:
    first = DirLock(tmp_path).acquire()
    before = (tmp_path / LOCK_NAME).read_bytes()
    with pytest.raises(LockError) as info:
        DirLock(tmp_path).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path} is in use by pid {os.getpid()} on host {HOST} "
                              "(since 20")
    assert "last heartbeat 0 s ago); wait for it, or stop it first" in message
    assert (tmp_path / LOCK_NAME).read_bytes() == before and leftovers(tmp_path) == [LOCK_NAME]
    assert capsys.readouterr().err == ""
    first.release()


def test_a_live_process_on_this_host_holds_its_lock_however_old_its_heartbeat(
        tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        write_lock(tmp_path, pid=sleeper.pid, heartbeat_age=10 * STALE_AFTER)
        with pytest.raises(LockError, match=f"in use by pid {sleeper.pid} on host {HOST}"):
            DirLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_dead_pid_on_this_host_is_taken_over_at_once(tmp_path: Path, capsys) -> None:
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    lock = DirLock(tmp_path).acquire()
    assert lock_record(tmp_path)["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"warning: {tmp_path}: taking over the stale lock of pid {pid} on "
                          f"host {HOST} (since 20")
    assert err.endswith("): that process is gone\n")
    lock.release()
    assert leftovers(tmp_path) == []  # nor the stale lock, renamed aside


def test_another_hosts_lock_without_a_recent_heartbeat_is_taken_over(tmp_path: Path,
                                                                     capsys) -> None:
    write_lock(tmp_path, host="node7", pid=os.getpid(), heartbeat_age=STALE_AFTER + 30)
    lock = DirLock(tmp_path).acquire()
    assert lock_record(tmp_path)["host"] == HOST
    err = capsys.readouterr().err
    assert "taking over the stale lock of pid" in err and "on host node7" in err
    assert err.endswith(f"): no heartbeat for {STALE_AFTER + 30:.0f} s "
                        f"(stale after {STALE_AFTER:.0f} s)\n")
    lock.release()


@pytest.mark.parametrize("where", ["another host", "another pid space of this host"])
def test_a_fresh_lock_of_another_host_is_refused(tmp_path: Path, where: str) -> None:
    host, pidspace = ("node7", None) if where == "another host" else (HOST, "other:boot")
    write_lock(tmp_path, host=host, pid=dead_pid(), heartbeat_age=5, pidspace=pidspace)
    with pytest.raises(LockError) as info:
        DirLock(tmp_path).acquire()
    assert f"on host {host} (since" in str(info.value)
    assert "last heartbeat 5 s ago); wait for it" in str(info.value)


def test_the_holder_refreshes_its_heartbeat(tmp_path: Path) -> None:
    lock = DirLock(tmp_path, heartbeat_every=0.05).acquire()
    first = lock_record(tmp_path)
    deadline = time.monotonic() + 5
    while lock_record(tmp_path)["heartbeat"] == first["heartbeat"]:
        assert time.monotonic() < deadline, "no heartbeat"
        time.sleep(0.05)
    again = lock_record(tmp_path)
    assert {k: v for k, v in again.items() if k != "heartbeat"} == {
        k: v for k, v in first.items() if k != "heartbeat"}
    lock.release()
    assert leftovers(tmp_path) == []


def test_a_holder_whose_lock_was_taken_over_says_so(tmp_path: Path, capsys) -> None:
    lock = DirLock(tmp_path, heartbeat_every=0.05).acquire()
    write_lock(tmp_path, host="node7", token="theirs")  # as if judged stale and taken over
    deadline = time.monotonic() + 5
    while "taken over" not in capsys.readouterr().err:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lock.release()
    assert lock_record(tmp_path)["token"] == "theirs"  # release leaves the new holder's lock


# ---------------------------------------------------------------- takers of one stale lock


def test_two_takers_of_one_stale_lock_only_one_wins(tmp_path: Path) -> None:
    """Both judged the same stale lock; the first takes it over, the second must then lose
    (it must not move the first's new lock aside and create its own)."""
    write_lock(tmp_path, pid=dead_pid())
    first, second = DirLock(tmp_path), DirLock(tmp_path)
    stale = first._read()
    assert stale is not None and second._read() == stale
    assert first._take_over(stale)
    token = lock_record(tmp_path)["token"]
    assert not second._take_over(stale)
    assert lock_record(tmp_path)["token"] == token == first.token
    assert leftovers(tmp_path) == [LOCK_NAME]
    first.release()
    assert leftovers(tmp_path) == []


def test_many_threads_race_for_one_stale_lock_and_one_wins(tmp_path: Path) -> None:
    write_lock(tmp_path, host="node7", heartbeat_age=STALE_AFTER * 2)
    locks = [DirLock(tmp_path) for _ in range(8)]
    barrier, outcomes = threading.Barrier(len(locks)), []

    def take(lock: DirLock) -> None:
        barrier.wait()
        try:
            lock.acquire()
            outcomes.append("won")
        except LockError as e:
            outcomes.append(str(e))

    threads = [threading.Thread(target=take, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1, outcomes
    assert all(f"in use by pid {os.getpid()} on host {HOST}" in o for o in outcomes if o != "won")
    [winner] = [lock for lock in locks if lock.held]
    winner.release()
    assert leftovers(tmp_path) == []


RACER = """
import sys, time
from mnistlab.run.lock import DirLock, LockError
directory, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
try:
    DirLock(directory).acquire()
    print("won", flush=True)
    time.sleep(1.5)  # hold it while the others try
except LockError as e:
    print("refused", e)
"""


def test_processes_racing_for_one_stale_lock_one_wins(tmp_path: Path) -> None:
    write_lock(tmp_path, pid=dead_pid())
    start = time.time() + 4  # after every racer's imports
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), str(start)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(4)]
    outs = [r.communicate(timeout=60) for r in racers]
    won = [out for out, _ in outs if out.startswith("won")]
    assert len(won) == 1, outs
    assert sum("taking over the stale lock" in err for _, err in outs) == 1
    assert leftovers(tmp_path) == []  # released at the winner's exit


def test_a_takeover_in_progress_is_not_entered_but_one_left_by_a_killed_taker_is(
        tmp_path: Path) -> None:
    write_lock(tmp_path, host="node7", heartbeat_age=STALE_AFTER * 2, token="t")
    section = tmp_path / f"{LOCK_NAME}.t.m0"
    section.touch()  # another taker is at work
    with pytest.raises(LockError, match="on host node7"):
        DirLock(tmp_path).acquire()
    old = time.time() - STALE_AFTER * 2
    os.utime(section, (old, old))  # its taker was killed inside: skipped
    DirLock(tmp_path).acquire().release()
    assert leftovers(tmp_path) == []


def test_an_unreadable_lock_is_in_use_until_old(tmp_path: Path, capsys) -> None:
    (tmp_path / LOCK_NAME).write_text("")  # e.g. its creator was killed before writing
    with pytest.raises(LockError, match="cannot be read"):
        DirLock(tmp_path).acquire()
    old = time.time() - STALE_AFTER * 2
    os.utime(tmp_path / LOCK_NAME, (old, old))
    DirLock(tmp_path).acquire().release()
    assert "it cannot be read and is" in capsys.readouterr().err


# ---------------------------------------------------------------- the sweep's lock


def test_the_sweep_holds_its_directory_from_start_to_end(tmp_path: Path, capsys) -> None:
    sweep_dir = tmp_path / "sweep"
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}}})
    other = DirLock(sweep_dir).acquire()  # another start's sweep
    with pytest.raises(SystemExit) as info:  # not an exception: Hydra would make it a warning
        SweepLock().on_multirun_start(config)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {sweep_dir} is in use by pid")
    other.release()

    SweepLock().on_multirun_start(config)
    assert lock_record(sweep_dir)["pid"] == os.getpid()
    SweepLock().on_multirun_end(config)  # Hydra's instance, or another: one sweep per process
    assert leftovers(sweep_dir) == []


def test_a_sweep_that_ended_without_its_end_callback_leaves_no_lock_in_the_way(
        tmp_path: Path) -> None:
    """The report's exit 1 skips on_multirun_end; the process's next multirun (tests run many
    in one process) takes the directory again, and a real process releases it at its exit."""
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    SweepLock().on_multirun_start(config)
    SweepLock().on_multirun_start(config)
    SweepLock().on_multirun_end(config)
    assert leftovers(tmp_path / "sweep") == []


def test_the_sweep_lock_comes_before_the_report_so_it_is_released_after_it() -> None:
    """Hydra ends callbacks in reverse order."""
    callbacks = yaml.safe_load((REPO_ROOT / "conf" / "config.yaml").read_text())["hydra"][
        "callbacks"]
    assert list(callbacks)[:2] == ["lock", "report"]
    assert callbacks["lock"]["_target_"] == "mnistlab.run.lock.SweepLock"


# ---------------------------------------------------------------- run_job holds the run's lock


@pytest.fixture
def job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, compose_cfg):
    """configure(multirun) -> (cfg, run_dir): a Hydra job in tmp_path/run, logger=none."""
    def configure(multirun: bool):
        cfg = compose_cfg(["logger=none"])
        run_dir = tmp_path / "run"
        run_dir.mkdir(exist_ok=True)
        hydra_cfg = OmegaConf.create({
            "mode": RunMode.MULTIRUN if multirun else RunMode.RUN,
            "runtime": {"output_dir": str(run_dir), "choices": {}},
            "overrides": {"task": []}, "job": {"num": 3},
            "sweep": {"dir": str(tmp_path)},
        })
        monkeypatch.setattr(lifecycle.HydraConfig, "get", staticmethod(lambda: hydra_cfg))
        return cfg, run_dir
    return configure


def call(cfg, execute):
    return run_job(cfg, prepare=lambda job: None, execute=execute, finish=lambda job: None,
                   tracking=Tracking(job_type="test", tags=[]))


def test_a_job_holds_its_directory_while_it_runs(job) -> None:
    cfg, run_dir = job(multirun=False)
    seen = []
    job = call(cfg, lambda job, data: seen.append(lock_record(run_dir)["pid"]))
    assert job.status == "completed" and seen == [os.getpid()]
    assert leftovers(run_dir) == []


@pytest.mark.parametrize("error", [RuntimeError("crash"), KeyboardInterrupt(),
                                   RunInterrupted(signal.SIGTERM), ConfigError("diverged")])
def test_a_failed_or_interrupted_job_releases_its_directory(job, error, capsys) -> None:
    cfg, run_dir = job(multirun=False)

    def fail(job, data):
        raise error

    with pytest.raises((SystemExit, RuntimeError)):
        call(cfg, fail)
    assert leftovers(run_dir) == []


def test_a_start_in_a_directory_in_use_writes_nothing_and_exits_2(job, capsys) -> None:
    cfg, run_dir = job(multirun=False)
    other = DirLock(run_dir).acquire()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(SystemExit) as info:
        call(cfg, lambda job, data: pytest.fail("it ran"))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {run_dir} is in use by pid {os.getpid()} on host {HOST}")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before  # no .hydra/ either
    other.release()


def test_a_multirun_job_in_a_directory_in_use_is_recorded_as_failed(job, capsys) -> None:
    cfg, run_dir = job(multirun=True)
    other = DirLock(run_dir).acquire()
    job = call(cfg, lambda job, data: pytest.fail("it ran"))
    assert job.status == "failed" and "is in use by pid" in job.error
    assert capsys.readouterr().err == f"error: job 3: {job.error}\n"
    other.release()


def test_ranks_above_0_take_no_lock(job, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, run_dir = job(multirun=False)
    monkeypatch.setattr(lifecycle, "global_rank", lambda: 1)
    holder = DirLock(run_dir).acquire()  # rank 0's
    assert call(cfg, lambda job, data: "done").result == "done"
    holder.release()
