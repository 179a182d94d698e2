"""Ctrl-C and SIGTERM (Slurm's preemption, `scancel` and time-limit signal) during training: the run
stops at the next batch boundary, keeps its last epoch's checkpoint and is marked `interrupted`.

The handler only records the signal; the backends call `check()` after every batch, so a stop
never lands inside a checkpoint write or a metrics update. A second Ctrl-C stops at once.

In a submitit job (`hydra/launcher=slurm`, `submitit_local`) the same holds for submitit's own
signal (USR2, or SUBMITIT_PREEMPT_SIGNAL), which Slurm sends `signal_delay_s` before the time
limit (`sbatch --signal=USR2@<delay>`). Submitit's handler for it pickles the job for its next
start, runs `scontrol requeue` and calls `sys.exit` wherever training is; here it runs only after
the run stopped at a batch boundary, and its exit is dropped, so the job ends as `interrupted`
(exit 128 + the signal, no result for submitit, whose driver waits for the requeued start) and the
requeued start resumes in the same job directory. If submitit declines to requeue (the
`max_num_timeout` time-outs are used up) its error ends the job instead (status `failed`, named).

An exception that ends training after a stop signal arrived is part of that stop (Lightning's own
SIGTERMException at an epoch or validation boundary, a DDP collective whose peer already
stopped): the run is `interrupted` by that signal, not `failed`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
log = logging.getLogger(__name__)


class RunInterrupted(BaseException):
    """Raised at a batch boundary after SIGINT, SIGTERM or submitit's requeue signal; a
    BaseException, like KeyboardInterrupt, so that no `except Exception` in a framework swallows
    it. `requeued`: submitit requeued the job, which resumes when it starts again."""

    def __init__(self, signum: int, requeued: bool = False) -> None:
        self.signum, self.requeued = signum, requeued
        note = " (submitit requeued the job: it resumes here when it starts again)"
        super().__init__(f"interrupted by {signal.Signals(signum).name}{note if requeued else ''}")


def _record(signum: int, frame: FrameType | None) -> None:
    if _received and signum == signal.SIGINT:
        raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
    _received.append(signum)


def submitit_signal() -> int | None:
    """The signal submitit requeues on, when this process is a submitit job; else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


def _requeue(handler: Callable[[int, Any], Any], signum: int) -> bool:
    """Submitit's handler, now that training has stopped; True if it requeued the job."""
    try:
        handler(signum, None)  # rank 0: checkpoint, `scontrol requeue`, sys.exit(-1)
    except SystemExit:
        return True
    return False  # another rank of the job: submitit leaves the requeue to rank 0


@contextmanager
def stop_at_batch_boundaries() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM (and in a submitit job its requeue signal) are recorded
    for `check()` instead of killing.

    Only the main thread may install signal handlers; elsewhere the defaults stay.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    requeue = submitit_signal()
    signals = [*SIGNALS]
    if requeue is not None and callable(signal.getsignal(requeue)):
        signals.append(requeue)  # submitit's handler is installed: defer it too
    previous = {s: signal.signal(s, _record) for s in signals}
    _received.clear()

    def restore() -> None:
        for s, handler in previous.items():
            signal.signal(s, handler)

    try:
        yield
    except BaseException as e:
        restore()
        if not _received or isinstance(e, KeyboardInterrupt):  # no stop signal; a second Ctrl-C
            raise
        if isinstance(e, RunInterrupted):
            signum = e.signum
        else:
            signum = _received[0]
            log.warning("stopping after %s: %s", signal.Signals(signum).name,
                        f"{type(e).__name__}: {e}".rstrip(": "))
        requeued = (requeue in previous and requeue in _received
                    and _requeue(previous[requeue], requeue))
        if isinstance(e, RunInterrupted) and not requeued:
            raise
        raise RunInterrupted(signum, requeued) from e
    finally:
        restore()


def check() -> None:
    """Raise RunInterrupted if a signal arrived; the backends call this after every batch."""
    if _received:
        raise RunInterrupted(_received[0])
