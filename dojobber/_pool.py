"""Run a graph's attempts on threads or on any concurrent.futures.Executor.

The :class:`~dojobber._schedule.Schedule` says what is ready; this loop
submits ready attempts while there is room, takes finished ones off a
completion queue (filled by done-callbacks, so each completion costs O(1)
however many attempts are in flight), and hands their outcomes to its
:class:`PoolHost` (the engine), which folds them into results and tells the
schedule.  A job waiting out its ``RETRY_DELAY`` is waited for here, never
on a worker.  The dependency is one-way: the engine imports this module,
this module knows the engine only as a :class:`PoolHost`.

In-process executors (thread pools) share ``global_storage`` and report
phases live.  Any other executor gets a picklable attempt
(:func:`~dojobber._remote.run_attempts_remote`) with a copy of global storage;
the host merges back the keys it changed, replays its phases to the
listeners, and keeps its job instance for ``Cleanup()``, which always runs
in this process.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import math
import queue
import time
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Protocol

from ._remote import run_attempts_remote
from ._schedule import Schedule
from ._threads import DaemonThreads
from ._timeout import Running, Slot, look_period
from .attempt import (
    AttemptSetup,
    Observer,
    RawOutcome,
    expired_outcome,
    failed_outcome,
    run_attempt,
    run_timed_attempt,
)
from .errors import JobNotSendableError, WorkerLostError

__all__ = ["MAX_LOST_ATTEMPTS", "PoolHost", "run_pooled"]

log = logging.getLogger("dojobber")


class PoolHost(Protocol):
    """What the pooled loop needs from whoever drives it (the engine)."""

    #: Jobs (by index) whose attempts were left running after a second
    #: Ctrl-C (set by the loop; their Cleanup must not run).
    abandoned: set[int]

    def observing(self) -> AbstractContextManager[Observer]:
        """The observer of the attempts run on the calling thread."""

    def record(self, out: RawOutcome) -> None:
        """Fold an attempt's outcome into the results and the schedule."""

    def lost(self, i: int) -> int:
        """Note an attempt of ``i`` lost with its worker; how many so far."""

    def before_wait(self) -> None:
        """The loop is about to wait (for a worker, or a retry's delay)."""


#: How often one job's attempt may be lost with its worker before the job
#: fails with WorkerLostError (a job that kills every worker it runs on).
MAX_LOST_ATTEMPTS = 3
#: Most attempts sent in one task (see :func:`_batch_size`).
MAX_BATCH = 64
#: Batches start when more than this many jobs per worker are ready.
BATCH_SPREAD = 4
#: Workers assumed for an executor that does not say (dask, your own).
UNKNOWN_WORKERS = 16
#: After Ctrl-C, how long to let running attempts finish before going on.
INTERRUPT_GRACE = 5.0

# Exceptions (by class name, so no optional import is needed) that mean
# "the worker running the attempt died", not "the attempt failed".
_WORKER_LOST = frozenset({"KilledWorker", "WorkerLost", "CommClosedError"})


def _worker_lost(err: BaseException) -> bool:
    return type(err).__name__ in _WORKER_LOST


def _batch_size(ready: int, workers: int | None) -> int:
    """How many ready attempts to send in one task.

    One each while the ready jobs are few next to the workers (so slow jobs
    spread over all of them); when many more are ready than can run at
    once, up to :data:`MAX_BATCH` per task, so that instant jobs do not pay
    a hand-off between threads (or a round trip to a cluster) each.
    """
    spread = BATCH_SPREAD * (workers or UNKNOWN_WORKERS)
    return 1 if ready <= spread else min(MAX_BATCH, ready // spread)


def _local_batch(
    host: PoolHost, schedule: Schedule, setup: AttemptSetup, items: list[tuple[int, int]],
    slot: Slot | None = None,
) -> list[RawOutcome]:
    """Run attempts one after another on this (pool) thread.

    Stops early when the run is asked to stop; an exception that is not an
    ``Exception`` (SystemExit in job code) fails its job (an
    :class:`~dojobber.attempt.Outcome` that forbids a retry) and ends the batch.  Attempts not
    started are simply missing from the list.  With a ``slot`` (jobs of the
    graph have a TIMEOUT) the outcomes are kept in it as they come and timed
    attempts write their deadline in it; when the loop takes one at its
    deadline, the batch ends there (what it returns is not used).
    """
    classes = schedule.graph.classes
    timeouts = schedule.graph.timeouts
    outcomes: list[RawOutcome] = [] if slot is None else slot.outcomes
    with host.observing() as observer:
        for i, attempt in items:
            if outcomes and schedule.stopped:
                break
            try:
                timeout = None if timeouts is None else timeouts[i]
                if timeout is None or slot is None:
                    outcomes.append(run_attempt(classes[i], i, attempt, setup, observer))
                else:
                    out = run_timed_attempt(classes[i], i, attempt, setup, observer, slot,
                                            timeout)
                    if out is None:  # taken at its deadline: abandoned
                        break
                    outcomes.append(out)
            except KeyboardInterrupt:
                raise  # as with workers=1: the run is interrupted
            except BaseException as err:
                outcomes.append(failed_outcome(i, attempt, err))
                break
    return outcomes


def run_pooled(
    host: PoolHost,
    schedule: Schedule,
    setup: AttemptSetup,
    *,
    executor: cf.Executor | None,
    workers: int,
    remote_cwd: str,
) -> None:
    """Converge with attempts running in parallel; returns when done.

    ``setup`` is for attempts in this process; attempts sent elsewhere get
    it with ``remote_cwd`` (a path) and a copy of its global storage.

    When jobs of the graph have a ``TIMEOUT`` and the attempts run on
    threads of this process, this loop also watches their deadlines (see
    :mod:`dojobber._timeout`): each batch has a :class:`Slot`, and an
    attempt past its deadline is recorded as timed out here, the rest of
    its batch made ready again, and (in the loop's own pool) its thread
    replaced.
    """
    owned = executor is None
    classes = schedule.graph.classes
    names = schedule.graph.names
    timeouts = schedule.graph.timeouts
    if executor is None:
        executor = (cf.ThreadPoolExecutor(workers, thread_name_prefix="dojobber")
                    if timeouts is None else DaemonThreads(workers))
    pool = executor
    local = isinstance(executor, (cf.ThreadPoolExecutor, DaemonThreads))
    limit = workers if (owned or workers > 1) else None
    storage = setup.global_storage
    done: queue.SimpleQueue[cf.Future[list[RawOutcome]]] = queue.SimpleQueue()
    running: dict[cf.Future[list[RawOutcome]], list[tuple[int, int]]] = {}
    submissions = itertools.count(1)
    # Timed attempts on this process's threads: the loop watches their
    # slots, looking every ``period`` (see dojobber._timeout).
    watching = local and timeouts is not None
    period = look_period(timeouts)
    slots: dict[cf.Future[list[RawOutcome]], Slot] = {}
    next_look = math.inf

    def submit(items: list[tuple[int, int]]) -> None:
        try:
            fut: cf.Future[list[RawOutcome]]
            if local:
                slot = Slot(classes, timeouts, schedule.attempt_number) if watching else None
                fut = pool.submit(_local_batch, host, schedule, setup, items, slot)
                if slot is not None:
                    slots[fut] = slot
            else:
                fut = pool.submit(
                    run_attempts_remote,  # type: ignore[arg-type]  # (an Outcome is a RawOutcome)
                    [(classes[i], i, attempt) for i, attempt in items],
                    replace(setup, cwd=remote_cwd, global_storage=dict(storage)),
                    next(submissions),
                    None if timeouts is None else [timeouts[i] for i, _ in items],
                )
        except cf.BrokenExecutor as err:
            for i, attempt in items:
                fail(i, attempt, WorkerLostError(names[i], 1, err))
            return
        except Exception as err:
            for i, attempt in items:
                fail(i, attempt, JobNotSendableError(names[i], err))
            return
        running[fut] = items
        fut.add_done_callback(done.put)

    def fail(i: int, attempt: int, err: BaseException) -> None:
        host.record(failed_outcome(i, attempt, err))

    def keep(outcomes: list[RawOutcome]) -> None:
        for out in outcomes:
            host.record(out)

    def finish(fut: cf.Future[list[RawOutcome]], items: list[tuple[int, int]]) -> None:
        if fut.cancelled():
            return
        err = fut.exception()
        if isinstance(err, KeyboardInterrupt):  # raised inside a job: Ctrl-C
            raise err
        if err is None:
            outcomes = fut.result()
            keep(outcomes)
            for i, _ in items[len(outcomes):]:  # not started: ready again
                schedule.put_back(i)
        elif _worker_lost(err):
            for i, attempt in items:
                lost = host.lost(i)
                if lost > MAX_LOST_ATTEMPTS:
                    fail(i, attempt, WorkerLostError(names[i], lost, err))
                else:
                    log.warning("%s: its worker was lost (%s); running the attempt again",
                                names[i], type(err).__name__)
                    submit([(i, attempt)])
        elif isinstance(err, cf.BrokenExecutor):  # a process pool whose worker died
            for i, attempt in items:
                fail(i, attempt, WorkerLostError(names[i], 1, err))
        else:
            for i, attempt in items:
                fail(i, attempt, JobNotSendableError(names[i], err))

    def watch() -> float:
        """Take the attempts past their deadline; when to look again."""
        now = time.perf_counter()
        nearest = now + period
        for fut, slot in list(slots.items()):
            taken, due = slot.look(now)
            if taken is not None:
                timed_out(fut, slot, taken)
            elif due < nearest:
                nearest = due
        return nearest

    def timed_out(fut: cf.Future[list[RawOutcome]], slot: Slot, taken: Running) -> None:
        """The attempt in ``slot`` is past its deadline: keep what its batch
        found before it, record it as timed out, make the rest ready."""
        items = running.pop(fut)
        del slots[fut]
        found = list(slot.outcomes)
        keep(found)
        host.record(expired_outcome(taken, slot.seen_at))
        for i, _ in items[len(found) + 1:]:
            schedule.put_back(i)
        if isinstance(pool, DaemonThreads):
            pool.replace()

    def room() -> bool:
        return limit is None or len(running) < limit

    try:
        while True:
            if watching and time.perf_counter() >= next_look:
                next_look = watch() if slots else math.inf
            if schedule.stopped and not running:
                return
            while room() and schedule.ready_count():
                size = _batch_size(schedule.ready_count(), limit)
                submit([(i, schedule.attempt_number(i)) for i in schedule.get_ready(size)])
            timeout: float | None = None
            while not schedule.ready_count() and room():
                due = schedule.retry_due()
                if due is None:
                    break
                pause = due - time.monotonic()
                if pause > 0:
                    timeout = pause
                    break
                i = schedule.take_retry()
                submit([(i, schedule.attempt_number(i))])
            if not running:
                if schedule.ready_count():
                    continue
                due = schedule.retry_due()
                if due is not None:
                    host.before_wait()
                    time.sleep(max(0.0, due - time.monotonic()))
                    continue
                return
            if watching:
                if next_look == math.inf:  # (the first batch with a slot)
                    next_look = time.perf_counter() + period
                until = max(0.0, next_look - time.perf_counter())
                timeout = until if timeout is None else min(timeout, until)
            try:
                got = done.get_nowait()
            except queue.Empty:
                host.before_wait()  # before waiting for a worker
                try:
                    got = done.get(timeout=timeout)
                except queue.Empty:
                    continue
            items = running.pop(got, None)
            if items is not None:  # (else: a batch taken at its deadline)
                slots.pop(got, None)
                finish(got, items)
    except BaseException as exc:
        # Ctrl-C (or an engine error): start nothing new; let what runs
        # finish, and keep the outcomes that arrive.  After Ctrl-C, wait
        # until they end, saying so; a second Ctrl-C abandons them (their
        # jobs' Cleanup is then not run while they may still be running).
        # Timed attempts are waited for until their deadline at most.
        for fut in running:
            fut.cancel()
        alive = [fut for fut in running if not fut.done()]
        if isinstance(exc, KeyboardInterrupt) and alive:
            # Abandoned until they end (a second Ctrl-C may come at any moment).
            host.abandoned = {i for fut in alive for i, _ in running[fut]}
            jobs = sorted({names[i] for fut in alive for i, _ in running[fut]})
            log.warning("interrupted: no new attempt starts; waiting for the %d attempt(s) "
                        "still running (%s); press Ctrl-C again to abandon them",
                        len(alive), ", ".join(jobs))
            try:
                while alive:
                    wait = None
                    if watching:
                        wait = max(0.0, watch() - time.perf_counter())
                        alive = [fut for fut in alive if fut in running]
                    cf.wait(alive, timeout=wait, return_when=cf.FIRST_COMPLETED)
                    alive = [fut for fut in alive if not fut.done()]
            except KeyboardInterrupt:
                log.warning("abandoned the attempt(s) of %s; their Cleanup is not run",
                            ", ".join(jobs))
        else:
            cf.wait(alive, timeout=INTERRUPT_GRACE)
        for fut in list(running):
            if fut.done():
                running.pop(fut)
                slots.pop(fut, None)
                if not fut.cancelled() and fut.exception() is None:
                    keep(fut.result())
        host.abandoned = {i for items in running.values() for i, _ in items}
        raise
    finally:
        if owned:
            pool.shutdown(wait=False, cancel_futures=True)
