"""Run a graph's attempts on threads or on any concurrent.futures.Executor.

The engine keeps its scheduling state (ready heap, retry heap, dependency
counters); this loop submits ready attempts while there is room, takes
finished ones off a completion queue (filled by done-callbacks, so each
completion costs O(1) however many attempts are in flight), and hands their
outcomes back to the engine.  A job waiting out its ``RETRY_DELAY`` is
waited for here, never on a worker.

In-process executors (thread pools) share ``global_storage`` and report
phases live.  Any other executor gets a picklable attempt
(:func:`~dojobber.attempt.run_attempt_remote`) with a copy of global storage;
the keys it changed are merged back, its phases are replayed to the
listeners, and its job instance comes back for ``Cleanup()``, which always
runs in this process.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import itertools
import logging
import queue
import time
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from ._context import phase_slot
from .attempt import Attempted, Outcome, attempt_function, run_attempts_remote
from .errors import JobNotSendableError, WorkerLostError
from .results import phase_tuples

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["MAX_LOST_ATTEMPTS", "run_pooled"]

log = logging.getLogger("dojobber")

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
    engine: Engine, attempt_fn: Any, items: list[tuple[int, int]], *rest: Any
) -> list[Attempted | Outcome]:
    """Run attempts one after another on this (pool) thread.

    Stops early when the run is asked to stop; an exception that is not an
    ``Exception`` (SystemExit in job code) fails its job (an
    :class:`Outcome` that forbids a retry) and ends the batch.  Attempts not
    started are simply missing from the list.
    """
    classes = engine.graph.classes
    timeouts = engine.graph.timeouts
    outcomes: list[Attempted | Outcome] = []
    *first, track = rest
    with phase_slot(track) if track is not None else nullcontext() as slot:
        for i, attempt in items:
            if outcomes and engine.stopping:
                break
            try:
                if timeouts is not None and timeouts[i] is not None:
                    done, extra = engine.timed_attempt(attempt_fn, i, attempt, *rest)
                    outcomes.append(done if extra is None else extra)
                    continue
                outcomes.append(attempt_fn(classes[i], i, attempt, *first, slot))
            except KeyboardInterrupt:
                raise  # as with workers=1: the run is interrupted (see finish())
            except BaseException as err:
                outcomes.append(_failed(i, attempt, err))
                break
    return outcomes


def _failed(i: int, attempt: int, err: BaseException) -> Outcome:
    """An attempt the engine fails without a retry (not sendable, worker
    lost too often, ended by SystemExit)."""
    return Outcome(i, attempt, False, False, None, err, [], None, final=True)


def run_pooled(engine: Engine) -> None:
    """Converge with attempts running in parallel; returns when done."""
    executor = engine.executor
    owned = executor is None
    if executor is None:
        executor = cf.ThreadPoolExecutor(engine.workers, thread_name_prefix="dojobber")
    local = isinstance(executor, cf.ThreadPoolExecutor)
    limit = engine.workers if (owned or engine.workers > 1) else None
    classes = engine.graph.classes
    names = engine.graph.names
    timeouts = engine.graph.timeouts
    args, kwargs, storage, no_act = engine.args, engine.kwargs, engine.global_storage, engine.no_act
    local_cwd, cwd = engine.local_cwd, engine.cwd
    bus = engine.bus
    emit, track = engine.live_emitters()
    on_created = engine.instances.append
    attempt_fn = attempt_function()
    ready, retry = engine._ready, engine._retry
    done: queue.SimpleQueue[cf.Future[list[Attempted | Outcome]]] = queue.SimpleQueue()
    running: dict[cf.Future[list[Attempted | Outcome]], list[tuple[int, int]]] = {}
    submissions = itertools.count(1)

    def submit(items: list[tuple[int, int]]) -> None:
        try:
            fut: cf.Future[list[Attempted | Outcome]]
            if local:
                fut = executor.submit(
                    _local_batch, engine, attempt_fn, items, args, kwargs, storage, local_cwd,
                    no_act, emit, on_created, track,
                )
            else:  # (a list of Outcome, which is a list of Attempted | Outcome to read)
                fut = executor.submit(
                    run_attempts_remote,  # type: ignore[arg-type]
                    [(classes[i], i, attempt) for i, attempt in items],
                    args, kwargs, dict(storage), cwd, no_act, next(submissions),
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
        out = _failed(i, attempt, err)
        engine._record(out.attempted(), out)

    def keep(outcomes: list[Attempted | Outcome]) -> None:
        for out in outcomes:
            if type(out) is tuple:
                engine._record(out)
                continue
            assert isinstance(out, Outcome)
            if not local:
                if out.instance is not None:
                    engine.instances.append(out.instance)
                if bus:
                    _replay(engine, out)
            engine._record(out.attempted(), out)

    def finish(fut: cf.Future[list[Attempted | Outcome]], items: list[tuple[int, int]]) -> None:
        if fut.cancelled():
            return
        err = fut.exception()
        if isinstance(err, KeyboardInterrupt):  # raised inside a job: Ctrl-C
            raise err
        if err is None:
            outcomes = fut.result()
            keep(outcomes)
            for i, _ in items[len(outcomes):]:  # not started: ready again
                heapq.heappush(ready, i)
        elif _worker_lost(err):
            for i, attempt in items:
                lost = engine._lost(i)
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

    def room() -> bool:
        return limit is None or len(running) < limit

    heappop = heapq.heappop
    try:
        while True:
            if engine.stopping:
                if not running:
                    return
                ready, retry = [], []  # start nothing new; let the running end
            while ready and room():
                size = _batch_size(len(ready), limit)
                submit([(heappop(ready), 1) for _ in range(min(size, len(ready)))])
            timeout: float | None = None
            while retry and not ready and room():
                pause = retry[0][0] - time.monotonic()
                if pause > 0:
                    timeout = pause
                    break
                i = heappop(retry)[2]
                submit([(i, engine._attempt_number(i))])
            if not running:
                if ready:
                    continue
                if retry:
                    engine.send_finished()
                    time.sleep(max(0.0, retry[0][0] - time.monotonic()))
                    continue
                return
            try:
                fut = done.get_nowait()
            except queue.Empty:
                engine.send_finished()  # before waiting for a worker
                try:
                    fut = done.get(timeout=timeout)
                except queue.Empty:
                    continue
            finish(fut, running.pop(fut))
    except BaseException as exc:
        # Ctrl-C (or an engine error): start nothing new; let what runs
        # finish, and keep the outcomes that arrive.  After Ctrl-C, wait
        # until they end, saying so; a second Ctrl-C abandons them (their
        # jobs' Cleanup is then not run while they may still be running).
        for fut in running:
            fut.cancel()
        alive = [fut for fut in running if not fut.done()]
        if isinstance(exc, KeyboardInterrupt) and alive:
            # Abandoned until they end (a second Ctrl-C may come at any moment).
            engine.abandoned = {i for fut in alive for i, _ in running[fut]}
            jobs = sorted({names[i] for fut in alive for i, _ in running[fut]})
            log.warning("interrupted: no new attempt starts; waiting for the %d attempt(s) "
                        "still running (%s); press Ctrl-C again to abandon them",
                        len(alive), ", ".join(jobs))
            try:
                cf.wait(alive)
            except KeyboardInterrupt:
                log.warning("abandoned the attempt(s) of %s; their Cleanup is not run",
                            ", ".join(jobs))
        else:
            cf.wait(alive, timeout=INTERRUPT_GRACE)
        for fut in list(running):
            if fut.done():
                running.pop(fut)
                if not fut.cancelled() and fut.exception() is None:
                    keep(fut.result())
        engine.abandoned = {i for items in running.values() for i, _ in items}
        raise
    finally:
        if owned:
            executor.shutdown(wait=False, cancel_futures=True)


def _replay(engine: Engine, out: Outcome) -> None:
    """Tell listeners the phases of an attempt that ran elsewhere."""
    name = engine.graph.names[out.index]
    emit: Any = engine.bus.emit
    emit("job_started", name, out.attempt)
    for phase, attempt, _start, duration, ok, error in phase_tuples(out.phases):
        emit("phase_started", name, phase, attempt)
        emit("phase_finished", name, phase, attempt, ok, duration, error)
