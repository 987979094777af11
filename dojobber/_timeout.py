"""Per-job ``TIMEOUT``: bounding one attempt.

In this process (the inline and thread engines) a timed attempt runs on the
thread that runs the run's attempts anyway, with nothing handed between
threads and no clock reading: before it starts, that thread publishes it
in its :class:`Slot` (a one-item list); when it ends, it takes it back
(one ``pop()``).  The thread that waits for the attempts anyway (the
pooled loop, or the caller's thread watching the inline loop, see
:mod:`dojobber._inline`) is the *watcher*: every tenth of the graph's
shortest ``TIMEOUT`` (:func:`look_period`) it looks at the slots and notes
when it first saw each attempt.  While attempts end within their
``TIMEOUT`` it never acts.

Past a deadline (seen running for its ``TIMEOUT``: taken at most one
period late, never early) the watcher takes the attempt (:meth:`Slot.look`): the try
is recorded as failed with :class:`~dojobber.JobTimeoutError` and the run
goes on on another thread.  Python cannot stop a thread, so the attempt is
*abandoned*: its thread goes on until the job's code returns, then finds
its slot taken, drops what the attempt found and runs nothing more for the
run.  While it runs, the same job is not tried again (in this run, a later
round or a later run of this process: such a try fails at once with
``JobTimeoutError`` saying so) and its ``Cleanup()`` is skipped.

In another process (a process pool, dask) the worker stops the attempt
itself: in a worker's main thread (process pools) a timer signal raises in
the job's code; elsewhere (dask runs tasks on worker threads) the attempt
runs on a thread of its own and, past its timeout, the worker process is
ended after the result is on its way, so that the runaway code stops (a
dask nanny starts a fresh worker).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "Running", "Slot", "abandoned", "call_with_timeout_remote", "ended", "look_period",
    "remote_attempts", "worker_signals",
]

_T = TypeVar("_T")
_perf = time.perf_counter

#: Job classes with a timed-out attempt still running in this process ->
#: how many such attempts.
_abandoned: dict[type, int] = {}
_lock = threading.Lock()


def abandoned(job: type) -> bool:
    """Whether a timed-out (or abandoned) attempt of ``job`` still runs in
    this process."""
    return job in _abandoned


def _abandon(job: type) -> None:
    with _lock:
        _abandoned[job] = _abandoned.get(job, 0) + 1


def _release(job: type) -> None:
    with _lock:
        left = _abandoned.get(job, 0) - 1
        if left > 0:
            _abandoned[job] = left
        else:
            _abandoned.pop(job, None)


#: What a :class:`Slot` knows of the attempt running in it:
#: ``(job, index, attempt, timeout)`` (``timeout`` None: no deadline).
Running = tuple[type, int, int, "float | None"]

#: The watcher looks at the slots this often, as a share of the graph's
#: shortest TIMEOUT (so an attempt is taken at most ~10% after its
#: TIMEOUT), but no more often than every :data:`MIN_LOOK` seconds.
LOOK_SHARE = 0.1
MIN_LOOK = 0.01


def look_period(timeouts: list[float | None] | None) -> float:
    """How often the watcher of a graph with these TIMEOUTs looks."""
    shortest = min((t for t in timeouts or () if t is not None), default=math.inf)
    return max(MIN_LOOK, shortest * LOOK_SHARE)


class Slot:
    """The attempt one thread runs now (at most one at a time), and what
    its watcher saw of it.  :attr:`outcomes`: what the attempts of the
    thread's batch found so far (the watcher keeps them when it takes the
    slot).  ``classes``, ``timeouts`` and ``attempt_of`` tell the watcher
    the job, TIMEOUT and attempt number of a graph index.

    The attempt's thread makes no clock reading and no object the garbage
    collector tracks: :meth:`begin` writes the job's index and puts a new
    number (its *claim*) in :attr:`claim`; the watcher, looking every
    :func:`look_period`, notes when it first saw each claim, and an attempt
    is past its deadline once it has been seen running for its ``timeout``
    (so it is taken at ``TIMEOUT`` plus up to one period, never before).
    Who owns the attempt is settled without a lock: the attempt's thread
    when the attempt returns (:func:`ended`) and the watcher at the
    deadline (:meth:`take`) each ``remove()`` that number from the list
    (one atomic operation); only one of them finds it there.
    """

    __slots__ = ("attempt_of", "claim", "classes", "index", "outcomes", "seen", "seen_at",
                 "seq", "timeouts")

    def __init__(self, classes: list[type], timeouts: list[float | None] | None,
                 attempt_of: Callable[[int], int]) -> None:
        self.classes = classes
        self.timeouts = timeouts
        self.attempt_of = attempt_of
        self.claim: list[int] = []
        self.seq = 0
        self.index = -1
        self.outcomes: list[Any] = []
        #: The claim the watcher saw last, and when (perf_counter).
        self.seen = 0
        self.seen_at = 0.0

    def begin(self, index: int) -> int:
        """An attempt of job ``index`` starts.  Returns its claim, for
        :func:`ended`."""
        self.seq = seq = self.seq + 1
        self.index = index
        self.claim.append(seq)  # (last: the index above is the claim's)
        return seq

    def running(self) -> Running | None:
        """The attempt running in the slot now, or None."""
        if not self.claim:
            return None
        i = self.index
        timeouts = self.timeouts
        return (self.classes[i], i, self.attempt_of(i), None if timeouts is None else timeouts[i])

    def look(self, now: float) -> tuple[Running | None, float]:
        """(The watcher, at ``now``.)  Take the attempt running in the slot
        if it is past its deadline.  Returns it when taken (else None), and
        when to look again at the latest (infinity: no deadline)."""
        try:
            seq = self.claim[0]
        except IndexError:
            return None, math.inf
        if seq != self.seen:
            self.seen, self.seen_at = seq, now
        timeouts = self.timeouts
        timeout = None if timeouts is None else timeouts[self.index]
        if timeout is None:
            return None, math.inf
        due = self.seen_at + timeout
        if now < due:
            return None, due
        return self.take(seq), math.inf

    def take(self, seq: int | None = None) -> Running | None:
        """(The watcher.)  Take the attempt running now (or only claim
        ``seq``), whatever its deadline; returns it when taken.  It is then
        abandoned: its job counts as :func:`abandoned` until it returns."""
        if seq is None:
            try:
                seq = self.claim[0]
            except IndexError:
                return None
        # (Read before taking; if the take succeeds, they were the claim's.)
        running = self.running()
        if running is None:
            return None
        _abandon(running[0])  # (first: the attempt's thread releases it if it lost)
        try:
            self.claim.remove(seq)
        except ValueError:  # it ended just now
            _release(running[0])
            return None
        return running


def ended(slot: Slot, seq: int, job: type) -> bool:
    """(The attempt's thread.)  The attempt of claim ``seq`` returned.  True:
    in time, the caller keeps what it found.  False: the watcher took it (it
    timed out or was abandoned); the caller drops it and runs nothing more
    for the run."""
    try:
        slot.claim.remove(seq)
    except ValueError:
        _release(job)
        return False
    return True


#: Attempts a worker process (process pool, dask) runs now.
_remote_attempts = 0
_sigint_installed = False


def _worker_sigint(signum: int, frame: Any) -> None:
    """SIGINT in a worker process (a terminal's Ctrl-C goes to the whole
    process group): KeyboardInterrupt in the job's code while an attempt
    runs, as in the run's own process; ignored while the worker waits for
    work (the run decides what happens next)."""
    if _remote_attempts:
        raise KeyboardInterrupt


def worker_signals() -> None:
    """Make SIGINT in this worker process what :func:`_worker_sigint` says
    (an executor's ``initializer``; also done by the first attempt a worker
    runs).  Only in a worker's main thread."""
    global _sigint_installed
    _sigint_installed = True
    import multiprocessing

    if multiprocessing.parent_process() is not None and \
            threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _worker_sigint)


class remote_attempts:  # (a context manager)
    """While the block runs, this worker process runs attempts (for
    :func:`_worker_sigint`)."""

    def __enter__(self) -> None:
        global _remote_attempts
        if not _sigint_installed:
            worker_signals()
        _remote_attempts += 1

    def __exit__(self, *exc: object) -> None:
        global _remote_attempts
        _remote_attempts -= 1


class _AlarmError(BaseException):
    """Raised in job code by the timer signal (not an ``Exception``, so
    that the job's ``except Exception`` does not swallow it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise _AlarmError


def call_with_timeout_remote(timeout: float, call: Callable[[], _T]) -> tuple[bool, _T | None]:
    """In a worker process: ``(True, call())`` or ``(False, None)`` after
    stopping ``call`` at its timeout (see the module doc)."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            return True, call()
        except _AlarmError:
            return False, None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box: list[tuple[bool, Any]] = []
    thread = threading.Thread(target=lambda: box.append(_capture(call)), daemon=True)
    thread.start()
    thread.join(timeout)
    if not box:
        # The attempt cannot be stopped in this thread: end the worker once
        # the result has had time to leave (its nanny, if any, restarts it).
        threading.Timer(1.0, os._exit, (70,)).start()
        return False, None
    ok, value = box[0]
    if not ok:
        raise value
    return True, value


def _capture(call: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, call()
    except BaseException as err:
        return False, err
