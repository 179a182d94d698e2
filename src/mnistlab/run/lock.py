"""One start at a time per run or sweep directory: `<dir>/.lock`, held for the life of the run.

A second start in a directory that is in use is refused with one line naming the holder (host,
pid, since when, last heartbeat); nothing is written into the directory. A stale lock is taken
over with one warning line: its holder is on this machine and its pid is dead (Slurm's requeue on
the same node resumes at once), or it is elsewhere and its heartbeat is older than STALE_AFTER
(the holder rewrites it every HEARTBEAT_EVERY seconds from a daemon thread).

It must work on the shared file systems of clusters (NFS), so it relies only on what NFS keeps
atomic and consistent between hosts, and not on fcntl/flock (NFS's lock manager is often absent,
emulated or unreliable, and a crashed client's locks are not reliably recovered):

- exclusive creation, os.open(O_CREAT | O_EXCL): atomic on local file systems and on NFSv3+
  (the server decides); whoever creates `.lock` holds the directory.
- rename within a directory (os.replace): atomic on the server; a reader sees the old file or
  the new one, never a mix. The holder's heartbeat writes a new file and renames it over
  `.lock`: with close-to-open consistency a reader that opens `.lock` reads the latest heartbeat,
  where a file's mtime can come from a cache up to a minute old.
- the clocks of the hosts agree to well within STALE_AFTER (NTP, as on any cluster): another
  host's lock is judged by its written heartbeat against this host's clock.
- pids are compared only within one pid space (same host name, boot and pid namespace; containers
  can share a host name); a lock from another pid space is judged by its heartbeat.

A takeover must not let two takers both win, nor a taker overwrite a lock that another taker
has just created. So everything done to one lock (identified by its token, new at every
acquisition) happens in a critical section entered by O_EXCL-creating `.lock.<token>.m0`:
the heartbeat, the release and the takeover, which re-reads `.lock`, gives up unless it is
still the stale lock it judged, renames it aside and O_EXCL-creates a new `.lock` (a start that
creates it first in between wins instead). A section file older than STALE_AFTER was left by a
process killed inside it, and the next number (`.m1`, ...) is tried.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mnistlab.errors import MnistlabError

LOCK_NAME = ".lock"
STALE_AFTER = 120.0  # s: a lock from another host with an older heartbeat is stale
HEARTBEAT_EVERY = 30.0  # s: how often the holder refreshes its heartbeat
_ATTEMPTS = 5  # rounds of create / judge / take over before a start gives up
_SECTIONS = 8  # .m0 ... .m7: section files left by killed processes that are skipped


class LockError(MnistlabError):
    """The directory is in use by another start."""


@dataclass(frozen=True)
class Holder:
    """What a `.lock` says: who holds it since when, and its last heartbeat."""

    host: str
    pid: int
    started: str  # ISO 8601 with the UTC offset
    heartbeat: str
    token: str  # new at every acquisition: which lock this is
    pidspace: str = ""  # boot id and pid namespace: where `pid` means this process
    readable: bool = True  # False: a file that is no lock (token and times from its inode)

    def age(self) -> float:
        """Seconds since the last heartbeat, by this host's clock."""
        return max(0.0, time.time() - datetime.fromisoformat(self.heartbeat).timestamp())

    def since(self) -> str:
        return datetime.fromisoformat(self.started).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _pidspace() -> str:
    """Where a pid names one process: this boot of this machine, this pid namespace."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(path).read_text().strip() if "boot" in path
                         else str(os.stat(path).st_ino))
        except OSError:
            parts.append("?")
    return ":".join(parts)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, as another user's
        return True
    return True


_HELD: dict[str, DirLock] = {}  # token -> this process's locks, released at its exit


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD.values()):
        lock.release()


class DirLock:
    """`<directory>/.lock`: acquire() or LockError; release() when done (idempotent)."""

    def __init__(self, directory: Path | str, *, stale_after: float = STALE_AFTER,
                 heartbeat_every: float = HEARTBEAT_EVERY) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.stale_after, self.heartbeat_every = stale_after, heartbeat_every
        self.host, self.pidspace = socket.gethostname(), _pidspace()
        self.token, self._started = "", ""
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self.token in _HELD

    # ------------------------------------------------------------------ acquire and release

    def acquire(self) -> DirLock:
        """Hold the directory; LockError (one line naming the holder) when it is in use."""
        self.directory.mkdir(parents=True, exist_ok=True)
        holder = None
        for attempt in range(_ATTEMPTS):
            if self._create():
                return self._hold()
            holder = self._read()
            if holder is None:
                continue  # released just now
            reason = self._stale(holder)
            if reason is None:
                break
            if self._take_over(holder):
                sys.stderr.write(f"warning: {self.directory}: taking over the stale lock of "
                                 f"{self._who(holder)}: {reason}\n")
                return self._hold()
            time.sleep(0.05 * (attempt + 1))  # another taker is at work: see who won
        raise LockError(self._in_use(holder))

    def release(self) -> None:
        """Stop the heartbeat and remove `.lock` if it is still this one's."""
        if not self.held or os.getpid() != self.pid:  # not in a forked child
            return
        _HELD.pop(self.token, None)
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if not self.directory.is_dir():
            return  # removed with its directory
        for _ in range(20):
            section = self._enter(self.token)
            if section is not None:
                break
            time.sleep(0.05)
        else:
            return  # a taker holds the section: the lock is theirs now
        try:
            current = self._read()
            if current is not None and current.token == self.token:
                self.path.unlink()
        except OSError:
            pass
        finally:
            self._clean(self.token)

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------ the steps

    def _record(self) -> dict[str, Any]:
        return {"host": self.host, "pid": os.getpid(), "started": self._started,
                "heartbeat": _now(), "token": self.token, "pidspace": self.pidspace}

    def _create(self) -> bool:
        """O_EXCL-create `.lock` with a new token; False when it exists."""
        self.token, self._started = uuid.uuid4().hex, _now()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        self.pid = os.getpid()
        _HELD[self.token] = self  # at once: this process's other threads see it is live
        try:
            os.write(fd, json.dumps(self._record()).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def _hold(self) -> DirLock:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.path}",
                                        daemon=True)
        self._thread.start()
        return self

    def _read(self) -> Holder | None:
        """The lock's holder; None when there is no lock. A file that stays unreadable for a
        second (not one being written) is a Holder with readable=False, judged by its mtime."""
        for _ in range(10):
            try:
                text = self.path.read_text()
                st = self.path.stat()
            except FileNotFoundError:
                return None
            try:
                record = json.loads(text)
                return Holder(host=str(record["host"]), pid=int(record["pid"]),
                              started=str(record["started"]),
                              heartbeat=str(record["heartbeat"]), token=str(record["token"]),
                              pidspace=str(record.get("pidspace", "")))
            except (ValueError, KeyError, TypeError):
                time.sleep(0.1)
        mtime = datetime.fromtimestamp(st.st_mtime).astimezone().isoformat(timespec="seconds")
        return Holder(host="?", pid=0, started=mtime, heartbeat=mtime, token=f"ino{st.st_ino}",
                      readable=False)

    def _stale(self, holder: Holder) -> str | None:
        """Why the holder's lock is stale, or None while it may be in use."""
        if not holder.readable:
            age = holder.age()
            return f"it cannot be read and is {age:.0f} s old" if age > self.stale_after else None
        if holder.host == self.host and holder.pidspace == self.pidspace:
            if holder.pid == os.getpid():
                return None if holder.token in _HELD else "left by this process"
            return None if _pid_alive(holder.pid) else "that process is gone"
        age = holder.age()
        if age > self.stale_after:
            return f"no heartbeat for {age:.0f} s (stale after {self.stale_after:.0f} s)"
        return None

    def _take_over(self, stale: Holder) -> bool:
        """Replace the stale lock with this one's; False when another start got there first."""
        section = self._enter(stale.token)
        if section is None:
            return False  # another taker (or its holder's heartbeat) is at work
        moved = False
        try:
            if self._read() != stale:  # taken, released or refreshed since it was judged
                return False
            os.replace(self.path, self.directory / f"{LOCK_NAME}.{stale.token}.old")
            moved = True
            return self._create()  # a start that created .lock in between wins instead
        except OSError:
            return False
        finally:
            if moved:
                self._clean(stale.token)  # that lock has ended for good
            else:
                section.unlink(missing_ok=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            with contextlib.suppress(OSError):  # a passing file-system error: try again next beat
                self._refresh()

    def _refresh(self) -> None:
        section = self._enter(self.token)
        if section is None:
            return  # a taker is at work: the next beat sees who holds the lock
        try:
            current = self._read()
            if current is None or current.token != self.token:
                whom = f"by {self._who(current)}" if current is not None else "and removed"
                sys.stderr.write(f"warning: {self.directory}: this run's lock was taken over "
                                 f"{whom}; another start may be writing here\n")
                self._stop.set()
                return
            fresh = self.directory / f"{LOCK_NAME}.{self.token}.new"
            fresh.write_text(json.dumps(self._record()))
            os.replace(fresh, self.path)
        finally:
            section.unlink(missing_ok=True)

    # ------------------------------------------------------------------ the critical section

    def _enter(self, token: str) -> Path | None:
        """Enter the one critical section of the lock `token`: its section file, or None when
        another process is in it."""
        for n in range(_SECTIONS):
            section = self.directory / f"{LOCK_NAME}.{token}.m{n}"
            try:
                os.close(os.open(section, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                return section
            except FileExistsError:
                try:
                    if time.time() - section.stat().st_mtime <= self.stale_after:
                        return None
                except FileNotFoundError:
                    return None  # it just left: the caller tries again later
            except FileNotFoundError:
                return None  # the directory is gone
        return None

    def _clean(self, token: str) -> None:
        """Remove the files of the lock `token` beside `.lock`: its section files, the renamed
        stale lock, a heartbeat never renamed. Done when that lock has ended for good."""
        for path in self.directory.glob(f"{LOCK_NAME}.{token}.*"):
            path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ messages

    @staticmethod
    def _who(holder: Holder) -> str:
        return f"pid {holder.pid} on host {holder.host} (since {holder.since()})"

    def _in_use(self, holder: Holder | None) -> str:
        if holder is None:
            return f"{self.directory} is in use: its lock {self.path} keeps changing; try again"
        if not holder.readable:
            return (f"{self.directory} is in use: its lock {self.path} cannot be read (written "
                    f"{holder.age():.0f} s ago); wait, or delete it if no run uses the directory")
        return (f"{self.directory} is in use by pid {holder.pid} on host {holder.host} (since "
                f"{holder.since()}, last heartbeat {holder.age():.0f} s ago); wait for it, or "
                "stop it first")


class SweepLock(Callback):
    """Hydra callback: the sweep holds its sweep directory from on_multirun_start to
    on_multirun_end (its jobs lock their own directories), or to the process's exit. Listed
    before the report in conf/config.yaml, so that it is released after the report is written."""

    # the sweep's lock: a process runs one multirun at a time, so a lock still held at the next
    # one's start is from a multirun that ended without on_multirun_end (the report's exit 1)
    lock: DirLock | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if SweepLock.lock is not None:
            SweepLock.lock.release()
        SweepLock.lock = DirLock(Path(config.hydra.sweep.dir))
        try:
            SweepLock.lock.acquire()
        except LockError as e:  # SystemExit: Hydra turns a callback's exceptions into warnings
            sys.stderr.write(f"error: {e}\n")
            raise SystemExit(2) from None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if SweepLock.lock is not None:
            SweepLock.lock.release()
            SweepLock.lock = None
