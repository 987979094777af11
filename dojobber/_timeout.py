"""Per-job ``TIMEOUT``: bounding one attempt.

In this process (the inline and thread engines) an attempt of a job with a
``TIMEOUT`` runs on a runner thread of its own while the engine's thread
(or the pool's) waits for it at most ``TIMEOUT`` seconds.  Past that the
attempt is *abandoned*: the try is recorded as failed with
:class:`~dojobber.JobTimeoutError` and the run goes on.  Python cannot
stop a thread, so the abandoned runner goes on until the job's code
returns; it is never given another attempt, and while it runs the same job
is not tried again (in this run, a later round or a later run of this
process: such a try fails at once with ``JobTimeoutError`` saying so).
Runner threads are kept and reused while nothing times out, so a timed
attempt costs a hand-off between two threads, not a thread start.

In another process (a process pool, dask) the worker stops the attempt
itself: in a worker's main thread (process pools) a timer signal raises in
the job's code; elsewhere (dask runs tasks on worker threads) the attempt
runs on a thread of its own and, past its timeout, the worker process is
ended after the result is on its way, so that the runaway code stops (a
dask nanny starts a fresh worker).
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import JobTimeoutError

__all__ = ["abandoned", "call_with_timeout", "call_with_timeout_remote"]

_T = TypeVar("_T")

#: Job classes whose timed-out attempt still runs -> the runner running it.
_abandoned: dict[type, _Runner] = {}
_lock = threading.Lock()
_idle: list[_Runner] = []
#: Idle runners kept at most.
_KEEP = 32


class _Runner(threading.Thread):
    """Runs the calls handed to it, one at a time, until abandoned."""

    def __init__(self) -> None:
        super().__init__(name="dojobber-timed", daemon=True)
        self.calls: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]] | None]
        self.calls = queue.SimpleQueue()
        self.abandoned = False
        self.job: type | None = None

    def run(self) -> None:
        while True:
            item = self.calls.get()
            if item is None:
                return
            call, reply = item
            try:
                reply.put((True, call()))
            except BaseException as err:  # (handed to the waiting thread)
                reply.put((False, err))
            # An idle runner must not keep the last call (and through it a
            # whole run: its engine, results and job instances) alive.
            item = call = reply = None  # type: ignore[assignment]
            if self.abandoned:
                with _lock:
                    if self.job is not None and _abandoned.get(self.job) is self:
                        del _abandoned[self.job]
                return


def abandoned(job: type) -> bool:
    """Whether a timed-out attempt of ``job`` still runs in this process."""
    runner = _abandoned.get(job)
    return runner is not None and runner.is_alive()


def call_with_timeout(job: type, timeout: float, call: Callable[[], _T]) -> tuple[bool, _T | None]:
    """``(True, call())``, or ``(False, None)`` when ``call`` did not return
    within ``timeout`` seconds (it goes on, abandoned, on its runner).
    What ``call`` raises is raised here.  Raises :class:`JobTimeoutError`
    at once when an abandoned attempt of ``job`` still runs."""
    if _abandoned and abandoned(job):
        raise JobTimeoutError(job.__name__, timeout, still_running=True)
    with _lock:
        runner = _idle.pop() if _idle else None
    if runner is None:
        runner = _Runner()
        runner.start()
    reply: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    runner.calls.put((call, reply))
    try:
        ok, value = reply.get(timeout=timeout)
    except queue.Empty:
        with _lock:
            runner.job = job
            runner.abandoned = True
            _abandoned[job] = runner
        if not reply.empty():  # it ended just now, after all
            ok, value = reply.get()
        else:
            return False, None
    with _lock:
        if not runner.abandoned and len(_idle) < _KEEP:
            _idle.append(runner)
        elif not runner.abandoned:
            runner.calls.put(None)
    if not ok:
        raise value
    return True, value


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
