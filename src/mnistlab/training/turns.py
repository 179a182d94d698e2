"""Training in turns with another process: the bench's paired timing.

`python -m mnistlab.bench` starts a train.py run and a bare loop side by side and lets them train
in turn, about a second each (TURN_SECONDS), so that epoch k of the one and epoch k of the other
run interleaved over the same stretch of time: a host whose speed swings by tens of percent within
seconds (seen on this project's machine) moves both alike. The epoch timers read `clock`, which
stops while the process waits for its turn, so an epoch's seconds are its own.

The bench gives each process the ends of two pipes in MNISTLAB_TURNS ("<read fd>,<write fd>");
without it (every other run) `wait_for_turn` returns at once and `clock` is time.perf_counter.
Pipes, not files or signals: the bench reads end-of-file when a process exits, whatever ended it.
"""

from __future__ import annotations

import functools
import os
import time

from mnistlab.errors import ConfigError

ENV = "MNISTLAB_TURNS"
READY, GO = b"r", b"g"
# read once, at import, and taken out of the environment: a process this one starts (another
# DDP rank) must not take the pipe ends' numbers for its own, where they name other files
PASSED = os.environ.pop(ENV, None)
# long enough that a switch (a context switch, caches refilled: well under a millisecond) is
# lost in it, short enough that a turn's share of the host's swings is small
TURN_SECONDS = 1.0


class Turns:
    """This process's end: how long its turn has lasted and how long it has waited in all."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.turn_started: float | None = None  # None: before the first turn
        self.waited = 0.0
        self.bench_gone = False

    def wait(self) -> None:
        now = time.perf_counter()
        if self.bench_gone or (self.turn_started is not None
                               and now - self.turn_started < TURN_SECONDS):
            return
        try:
            os.write(self.write_fd, READY)
            self.bench_gone = os.read(self.read_fd, 1) != GO
        except BrokenPipeError:
            self.bench_gone = True
        self.turn_started = time.perf_counter()
        self.waited += self.turn_started - now


@functools.cache
def this_process() -> Turns | None:
    """The pipe ends the bench passed, or None outside the bench."""
    if not PASSED:
        return None
    try:
        ends = tuple(int(fd) for fd in PASSED.split(","))
        if len(ends) != 2:
            raise ValueError
        for fd in ends:
            os.set_inheritable(fd, False)  # a child process must not hold the bench's pipes
    except (ValueError, OSError):
        raise ConfigError(f"{ENV}={PASSED!r} is not allowed: it names two open pipe ends, "
                          "'<read fd>,<write fd>', which only mnistlab.bench sets") from None
    return Turns(*ends)


def wait_for_turn() -> None:
    """Called as each training batch (or group of batches) starts: under the bench, once this
    process's turn has lasted TURN_SECONDS (and before its first batch), it tells the bench it is
    idle and blocks until its next turn."""
    turns = this_process()
    if turns is not None:
        turns.wait()


def clock() -> float:
    """time.perf_counter less the seconds spent waiting for turns: the epoch timers' clock."""
    turns = this_process()
    return time.perf_counter() - (turns.waited if turns is not None else 0.0)
