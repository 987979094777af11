"""Run a graph's attempts one at a time (``workers=1``, no executor).

:func:`run_inline` takes ready jobs from the
:class:`~dojobber._schedule.Schedule` one by one, runs each attempt and
hands its outcome to its :class:`InlineHost` (the engine), which folds it
into the results and tells the schedule.

When jobs of the graph have a ``TIMEOUT``, :func:`run_watched` runs that
same loop on a loop thread of its own, and the calling thread watches the
deadlines (see :mod:`dojobber._timeout`): an attempt that ends in time
costs a clock reading and a lock, no hand-off between threads.  Past a
deadline the caller's thread records the timed-out try and starts a new
loop thread that goes on with the schedule; the old one is abandoned in the
job's code.  On Ctrl-C no new attempt starts and KeyboardInterrupt is
raised in the running job's code, as it is without TIMEOUTs (there the
job runs on the caller's thread); it takes effect once that code runs
Python again, so while a blocking call goes on the caller waits for it (at
most until the attempt's deadline), says so, and a second Ctrl-C abandons
it, as the pooled loop does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from ._schedule import Schedule
from ._timeout import Slot, _abandoned, _release, look_period
from .attempt import (
    AttemptSetup,
    Observer,
    RawOutcome,
    expired_outcome,
    failed_outcome,
    run_attempt,
    run_timed_attempt,
)

__all__ = ["InlineHost", "run_inline", "run_watched"]

log = logging.getLogger("dojobber")
_perf = time.perf_counter
#: After Ctrl-C, how long the job's code has to end before the console
#: says what it waits for.
INTERRUPT_GRACE = 0.5


class InlineHost(Protocol):
    """What the inline loop needs from whoever drives it (the engine)."""

    #: Jobs (by index) whose attempts were left running after a second
    #: Ctrl-C (their Cleanup must not run).
    abandoned: set[int]

    def observing(self) -> AbstractContextManager[Observer]:
        """The observer of the attempts run on the calling thread."""

    def record(self, out: RawOutcome) -> None:
        """Fold an attempt's outcome into the results and the schedule."""

    def before_wait(self) -> None:
        """The loop is about to wait (for a retry's delay)."""


def run_inline(
    host: InlineHost,
    schedule: Schedule,
    setup: AttemptSetup,
    slot: Slot | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> bool:
    """Attempts one at a time until nothing is left to try.

    With a ``slot`` every attempt goes through it (the graph's TIMEOUTs
    are enforced by its watcher).  Returns False when the watcher took an
    attempt (this thread is abandoned and must do nothing more), else True.
    """
    classes = schedule.graph.classes
    timeouts = schedule.graph.timeouts
    record = host.record
    claim = slot.claim if slot is not None else []
    with host.observing() as observer:
        while True:
            i = schedule.next_ready()
            attempt = 1  # (the inline loop puts nothing back)
            if i is None:
                due = schedule.retry_due()
                if due is None:
                    return True
                pause = due - time.monotonic()
                if pause > 0:
                    host.before_wait()
                    sleep(pause)
                    if schedule.stopped:
                        return True
                i = schedule.take_retry()
                attempt = schedule.attempt_number(i)
            try:
                if slot is None:
                    out = run_attempt(classes[i], i, attempt, setup, observer)
                elif _abandoned and timeouts is not None and timeouts[i] is not None:
                    timed = run_timed_attempt(classes[i], i, attempt, setup, observer, slot,
                                              timeouts[i])
                    if timed is None:
                        return False
                    out = timed
                else:  # (run_timed_attempt written out: every attempt's path)
                    slot.seq = seq = slot.seq + 1
                    slot.index = i
                    claim.append(seq)
                    try:
                        out = run_attempt(classes[i], i, attempt, setup, observer)
                    finally:
                        try:
                            claim.remove(seq)
                        except ValueError:  # taken by the watcher: abandoned; this
                            _release(classes[i])  # thread does nothing more (and drops
                            return False  # what the attempt raised, if anything)
            except SystemExit as err:  # sys.exit() in job code: the job fails
                observer.attempt_ended()
                out = failed_outcome(i, attempt, err)
            record(out)


class _Loop:
    """One loop thread of :func:`run_watched`."""

    def __init__(self, host: InlineHost, schedule: Schedule, setup: AttemptSetup,
                 wake: threading.Event, sleep: Callable[[float], object]) -> None:
        graph = schedule.graph
        self.slot = Slot(graph.classes, graph.timeouts, schedule.attempt_number)
        self.ended = False
        self.error: BaseException | None = None

        def body() -> None:
            try:
                try:
                    self.ended = run_inline(host, schedule, setup, self.slot, sleep)
                except BaseException as err:  # (raised again by the watching thread)
                    self.error = err
                    self.ended = True
                if self.ended:
                    wake.set()
            except KeyboardInterrupt:  # (Ctrl-C sent here just as the loop ended)
                self.ended = True
                wake.set()

        self.thread = threading.Thread(target=body, name="dojobber-run", daemon=True)
        self.thread.start()


class _Watching:
    """What the caller's thread watches: the loop thread running now."""

    def __init__(self, host: InlineHost, schedule: Schedule, setup: AttemptSetup) -> None:
        self.host = host
        self.schedule = schedule
        self.setup = setup
        self.wake = threading.Event()  # set when a loop thread ends
        self.stopped = threading.Event()  # ends a loop thread's wait for a retry
        self.period = look_period(schedule.graph.timeouts)
        self.loop = self.start()

    def start(self) -> _Loop:
        """A new loop thread, going on with the schedule."""
        return _Loop(self.host, self.schedule, self.setup, self.wake, self.stopped.wait)

    def watch(self, go_on: bool = True) -> None:
        """Wait until the loop ends; when its attempt times out, record that
        and (``go_on``) go on with a new loop thread."""
        host, wake = self.host, self.wake
        while True:
            loop = self.loop
            wake.clear()
            if loop.ended:
                return
            slot = loop.slot
            now = _perf()
            taken, due = slot.look(now)
            if taken is not None:
                host.record(expired_outcome(taken, slot.seen_at))
                if not go_on:
                    return
                self.loop = self.start()
                continue
            wake.wait(min(due, now + self.period) - now)


def run_watched(host: InlineHost, schedule: Schedule, setup: AttemptSetup) -> None:
    """:func:`run_inline` on a loop thread while this thread watches the
    attempts' deadlines (see the module doc)."""
    watching = _Watching(host, schedule, setup)
    try:
        watching.watch()
    except KeyboardInterrupt:
        schedule.stop()
        watching.stopped.set()
        _interrupted(watching)
        raise
    error = watching.loop.error
    if error is not None:
        raise error


def _interrupted(watching: _Watching) -> None:
    """After Ctrl-C: raise KeyboardInterrupt in the job's code, as a run
    without TIMEOUTs has it raised there (it takes effect once the job's
    code runs Python again).  Meanwhile wait for the loop thread, at most
    until the attempt's deadline; a second Ctrl-C abandons the attempt."""
    loop = watching.loop
    if loop.ended:
        return
    slot = loop.slot
    running = slot.running()
    if running is not None and loop.thread.ident is not None:
        _raise_in(loop.thread.ident, KeyboardInterrupt)
    try:
        if not watching.wake.wait(INTERRUPT_GRACE) and not loop.ended:
            running = slot.running()
            if running is not None:
                log.warning("interrupted: no new attempt starts; waiting for the attempt of %s "
                            "still running; press Ctrl-C again to abandon it",
                            running[0].__name__)
            watching.watch(go_on=False)
    except KeyboardInterrupt:
        taken = slot.take()
        if taken is not None:
            watching.host.abandoned = {taken[1]}
            log.warning("abandoned the attempt of %s; its Cleanup is not run",
                        taken[0].__name__)
        else:  # between attempts: it stops at once
            loop.thread.join(1.0)


def _raise_in(ident: int, error: type[BaseException]) -> None:
    """Raise ``error`` in the thread ``ident`` when it next runs Python code
    (CPython's ``PyThreadState_SetAsyncExc``)."""
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(error))
