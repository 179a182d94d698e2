"""Ctrl-C and SIGTERM (Slurm's preemption and time-limit signal) during training: the run stops
at the next batch boundary, keeps its last epoch's checkpoint and is marked `interrupted`.

The handler only records the signal; the backends call `check()` after every batch, so a stop
never lands inside a checkpoint write or a metrics update. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


class RunInterrupted(BaseException):
    """Raised at a batch boundary after SIGINT or SIGTERM; a BaseException, like
    KeyboardInterrupt, so that no `except Exception` in a framework swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def _record(signum: int, frame: FrameType | None) -> None:
    if _received and signum == signal.SIGINT:
        raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
    _received.append(signum)


@contextmanager
def stop_at_batch_boundaries() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM are recorded for `check()` instead of killing.

    Only the main thread may install signal handlers; elsewhere the defaults stay.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _record) for s in SIGNALS}
    _received.clear()
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def check() -> None:
    """Raise RunInterrupted if a signal arrived; the backends call this after every batch."""
    if _received:
        raise RunInterrupted(_received[0])
