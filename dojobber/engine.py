"""The scheduler: runs attempts of ready jobs until the graph converges.

Linear in jobs + edges, no recursion.  Each job keeps a count of its
dependencies that have not succeeded yet; a job whose count reaches zero is
*ready*.  Ready jobs are taken lowest graph index first (the graph numbers
jobs in depth-first post-order over ``DEPS``), so a sequential run tries jobs
in the order upstream DoJobber does.  A failed job with tries left waits in a
second queue until its ``RETRY_DELAY`` has passed; it is taken only when no
fresh job is ready, so a retry never overtakes other runnable work and a
delay is slept only when there is nothing else to do.

Attempts run inline (``workers=1``), on a thread pool (``workers=N``) or on
any :class:`concurrent.futures.Executor`.  The engine emits events and keeps
results; it never prints.
"""

from __future__ import annotations

import concurrent.futures as cf
import heapq
import os
import time
from contextlib import nullcontext
from itertools import compress
from operator import not_
from typing import Any

from ._context import LogRouter, Slot, phase_slot
from ._gc import relaxed_gc
from ._pool import run_pooled
from ._timeout import call_with_timeout
from .attempt import Attempted, Outcome, attempt_function
from .errors import JobTimeoutError, gave_up
from .events import EventBus, RunInfo
from .graph import JobGraph
from .job import Job
from .results import PHASE_FIELDS, JobResult, JobStatus, RunResult

__all__ = ["Engine"]

_perf = time.perf_counter

_OK, _CHANGED, _FAILED = JobStatus.OK, JobStatus.CHANGED, JobStatus.FAILED


class Engine:
    """One ``checknrun()`` over a graph (or the part below one job of it)."""

    def __init__(
        self,
        graph: JobGraph,
        *,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        no_act: bool = False,
        bus: EventBus | None = None,
        workers: int = 1,
        executor: cf.Executor | None = None,
        cwd: str,
    ) -> None:
        self.graph = graph
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.no_act = no_act
        self.bus = bus if bus is not None else EventBus()
        self.workers = workers
        self.executor = executor
        self.cwd = cwd
        self.global_storage: dict[str, Any] = {}
        #: Every job instance made, in order of creation (for Cleanup).
        self.instances: list[Job] = []
        #: Result of each job by graph index; None until its first attempt.
        self.results: list[JobResult | None] = [None] * len(graph)
        #: Set (from any thread) to stop after the attempts now running.
        self.stopping = False
        #: Jobs (by index) whose attempts were abandoned still running after
        #: a second Ctrl-C: their Cleanup must not run.
        self.abandoned: set[int] = set()
        # Which per-job events anyone listens to (the others are not made).
        self._tell_attempts = self.bus.caller("attempt_finished")
        self._tell_jobs = self.bus.caller("job_finished")
        #: Results for listeners that take them in batches (jobs_finished).
        self.finished = self.bus.batch("jobs_finished")
        #: Anyone wants to hear about finished attempts or jobs.
        self._telling = not (self._tell_attempts is None and self._tell_jobs is None
                             and self.finished is None)
        self._names = graph.names
        self._classes = graph.classes
        self._dependants = graph.dependants
        self._seq = 0
        self._track: Any = None

    # ------------------------------------------------------------------
    def run(self, target: int) -> RunResult:
        """Converge ``target`` and everything it depends on."""
        graph = self.graph
        started = time.time()
        in_run = graph.reachable(target)
        # Dependencies not passed yet, per job; -1 for a job outside this run,
        # so that it never counts down to ready.
        if target == len(in_run) - 1:  # the root: every job is in the run
            waiting = list(map(len, graph.deps))
        else:
            waiting = [len(deps) if inside else -1
                       for deps, inside in zip(graph.deps, in_run, strict=True)]
        # The jobs with nothing to wait for, ascending (so: a heap).
        ready = list(compress(range(len(waiting)), map(not_, waiting)))
        jobs = len(waiting) - waiting.count(-1)
        self._in_run = in_run
        self._waiting = waiting
        self._ready = ready
        self._retry: list[tuple[float, int, int]] = []
        self._failed: list[int] = []
        if self.bus:
            self.bus.emit(
                "run_started",
                RunInfo(
                    root=graph.root_name,
                    target=graph.names[target],
                    jobs=tuple(compress(graph.names, in_run)),
                    args=self.args,
                    kwargs=self.kwargs,
                    no_act=self.no_act,
                    workers=self.workers,
                    started=started,
                    graph=graph,
                ),
            )
        interrupted = False
        # Attempts in this process return to the directory through an open
        # descriptor: fchdir() costs half of chdir(path) and still works if
        # the directory is renamed meanwhile.
        cwd_fd: int | None = None
        if os.chdir in os.supports_fd:
            try:
                cwd_fd = os.open(self.cwd, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                cwd_fd = None
        self.local_cwd: str | int = self.cwd if cwd_fd is None else cwd_fd
        try:
            with relaxed_gc(jobs), LogRouter(self.bus) if self.bus else nullcontext(), \
                    self.finished.ticking() if self.finished is not None else nullcontext():
                if self.executor is None and self.workers <= 1:
                    self._run_inline()
                else:
                    run_pooled(self)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if cwd_fd is not None:
                os.close(cwd_fd)
            self.result = self._finish(target, started, interrupted)
        return self.result

    # ------------------------------------------------------------------
    def _record(self, out: Attempted, extra: Outcome | None = None) -> None:
        """Fold an attempt into the job's result; schedule what follows.

        ``extra``: the :class:`Outcome` when the attempt ran in another
        process or was failed by the engine (its storage changes are merged
        here; it may forbid a retry and carry a formatted traceback).
        """
        i, attempt, ok, ran, result, exception, phases = out
        res = self.results[i]
        if extra is not None and extra.storage_set is not None:
            extra.apply_storage(self.global_storage)
        if ok:
            if res is None:
                res = self.results[i] = JobResult(
                    self._names[i], self._classes[i], _CHANGED if ran else _OK, 1,
                    result, None, phases, 0, None, i,
                )
            else:
                res.tries += 1
                res._phases.extend(phases)
                ran = ran or "run" in res._phases[::PHASE_FIELDS]
                res.status = _CHANGED if ran else _OK
                res.result = result
                res.exception = None
                res._traceback = None
            waiting = self._waiting
            for d in self._dependants[i]:
                count = waiting[d] - 1
                waiting[d] = count
                if not count:
                    heapq.heappush(self._ready, d)
            if not self._telling:
                return
            retry = False
        else:
            if res is None:
                res = self.results[i] = JobResult(
                    self._names[i], self._classes[i], _FAILED, 1, None, exception, phases,
                    0, None, i,
                )
            else:
                res.tries += 1
                res._phases.extend(phases)
                res.status = _FAILED
                res.exception = exception
            res._traceback = extra.traceback if extra is not None else None
            final = (extra is not None and extra.final) or gave_up(exception)
            retry = not (self.no_act or final) and res.tries < self.graph.tries[i]
            if retry:
                self._seq += 1
                backoff = self.graph.backoffs.get(i) if self.graph.backoffs else None
                due = time.monotonic() + (
                    self.graph.delays[i] if backoff is None else backoff.delay(res.tries)
                )
                heapq.heappush(self._retry, (due, self._seq, i))
            else:
                self._failed.append(i)
            if not self._telling:
                return
        # Listeners: the attempt, and the job when it is final.
        if self._tell_attempts is not None:
            self._tell_attempts(res.name, attempt, ok, retry)
        if retry:
            return
        if self._tell_jobs is not None:
            self._tell_jobs(res)
        batch = self.finished
        if batch is not None:
            # Batch.add(res, when the attempt ended), inlined: a call less
            # per job.  The attempt's end is the end of its last phase as
            # the attempt read the clock (no second reading).
            held = batch.items
            held.append(res)
            if len(held) >= batch.size or (
                phases[-4] + phases[-3] if extra is None else self._clock(phases, extra)
            ) >= batch.due:
                batch.send()

    @staticmethod
    def _clock(phases: list[Any], extra: Outcome) -> float:
        """When an attempt that :class:`Outcome` ``extra`` describes ended,
        for batching: the end of its last phase, unless it ran in another
        process (another clock) or had none (the engine failed it)."""
        if phases and extra.storage_set is None:
            return phases[-4] + phases[-3]  # type: ignore[no-any-return]
        return _perf()

    def _job_final(self, res: JobResult) -> None:
        """Tell listeners that ``res`` is final without an attempt (blocked)."""
        if self._tell_jobs is not None:
            self._tell_jobs(res)
        if self.finished is not None:
            self.finished.add(res, _perf())

    def live_emitters(self) -> tuple[Any, Any]:
        """``(emit, track)`` for attempts in this process: ``emit`` when a
        listener wants phase events, ``track`` when one wants log records or
        progress (which need to know the running job); else None, so that an
        attempt makes no calls nobody listens to."""
        bus = self.bus
        if not bus:
            return None, None
        phases = any(bus.wants(e) for e in ("job_started", "phase_started", "phase_finished"))
        tracked = bus.wants("log") or bus.wants("progress")
        return (bus.emit if phases else None), (bus.emit if tracked else None)

    def send_finished(self) -> None:
        """Send the results batched for ``jobs_finished`` now (before a wait)."""
        if self.finished is not None:
            self.finished.send()

    def _lost(self, i: int) -> int:
        """Note an attempt of job ``i`` lost with its worker; return the count."""
        res = self.results[i]
        if res is None:
            res = self.results[i] = JobResult(self._names[i], self._classes[i], tries=0, index=i)
        res.lost_attempts += 1
        return res.lost_attempts

    def _attempt_number(self, i: int) -> int:
        res = self.results[i]
        return 1 if res is None else res.tries + 1

    # ------------------------------------------------------------------
    def _run_inline(self) -> None:
        emit, track = self.live_emitters()
        self._track = track
        # The jobs ready at the start (ascending) are taken in order from a
        # list; the heap holds only those that became ready since.
        first, self._ready = self._ready, []
        with phase_slot(track) if track is not None else nullcontext() as slot:
            self._loop(first, emit, slot)

    def _loop(self, first: list[int], emit: Any, slot: Slot | None) -> None:
        """Attempts one at a time until nothing is left to try.  The lowest
        of ``first`` and the ready heap goes first, as from one heap,
        without a heap operation per leaf of a wide graph."""
        ready = self._ready
        retry = self._retry
        classes = self.graph.classes
        heappop = heapq.heappop
        n_first = len(first)
        k = 0
        args, kwargs, storage, cwd, no_act = (
            self.args, self.kwargs, self.global_storage, self.local_cwd, self.no_act,
        )
        on_created = self.instances.append
        record = self._record
        attempt_fn = attempt_function()
        timeouts = self.graph.timeouts
        while not self.stopping:
            if k < n_first and not (ready and ready[0] < first[k]):
                i = first[k]
                k += 1
                attempt = 1
            elif ready:
                i = heappop(ready)
                attempt = 1
            elif retry:
                due, _, i = heappop(retry)
                pause = due - time.monotonic()
                if pause > 0:
                    self.send_finished()
                    time.sleep(pause)
                attempt = self._attempt_number(i)
            else:
                return
            if timeouts is not None and timeouts[i] is not None:
                record(*self.timed_attempt(attempt_fn, i, attempt, args, kwargs, storage,
                                           cwd, no_act, emit, on_created, self._track))
                continue
            try:
                out = attempt_fn(
                    classes[i], i, attempt, args, kwargs, storage, cwd, no_act, emit,
                    on_created, slot,
                )
            except SystemExit as err:  # sys.exit() in job code: the job fails
                if slot is not None:
                    slot[0] = None
                failed = Outcome(i, attempt, False, False, None, err, [], None, final=True)
                record(failed.attempted(), failed)
                continue
            record(out)

    def timed_attempt(
        self, attempt_fn: Any, i: int, attempt: int, *rest: Any
    ) -> tuple[Attempted, Outcome | None]:
        """An attempt of job ``i``, which has a TIMEOUT, on a runner thread
        (see :mod:`dojobber._timeout`): what ``_record`` takes.  ``rest``:
        the attempt's arguments after ``attempt``, the last one the
        ``track`` emitter for the runner's phase slot."""
        job = self.graph.classes[i]
        timeouts = self.graph.timeouts
        assert timeouts is not None
        timeout = timeouts[i]
        assert timeout is not None
        *first, track = rest

        def call() -> Attempted:
            with phase_slot(track) if track is not None else nullcontext() as slot:
                return attempt_fn(job, i, attempt, *first, slot)  # type: ignore[no-any-return]

        start = _perf()
        try:
            done, value = call_with_timeout(job, timeout, call)
        except JobTimeoutError as err:  # an earlier attempt of it still runs
            done, value, error = False, None, err
        else:
            error = JobTimeoutError(self._names[i], timeout)
        if done:
            assert value is not None
            return value, None
        phases = ["timeout", attempt, start, _perf() - start, False, error]
        out = Outcome(i, attempt, False, False, None, error, phases, None, final=True)
        return out.attempted(), out

    # ------------------------------------------------------------------
    def _finish(self, target: int, started: float, interrupted: bool) -> RunResult:
        graph = self.graph
        results = self.results
        # Failed for good, or waiting for a retry when the run ended.
        failed = self._failed + [i for _, _, i in self._retry]
        blocked = graph.upstream_of(failed) if failed else None
        if None not in results:  # every job was attempted: the usual end
            jobs: dict[str, JobResult] = dict(zip(graph.names, results, strict=True))  # type: ignore[arg-type]
        else:
            jobs = {}
            for i, name in enumerate(graph.names):
                res = results[i]
                if res is None:
                    res = JobResult(name, graph.classes[i], index=i)
                    if blocked is not None and blocked[i] and self._in_run[i]:
                        res.status = JobStatus.BLOCKED
                        if self._telling:
                            self._job_final(res)
                jobs[name] = res
        self.send_finished()
        return RunResult(
            graph=graph,
            jobs=jobs,
            target=graph.names[target],
            no_act=self.no_act,
            started=started,
            finished=time.time(),
            interrupted=interrupted,
            stopped=self.stopping,
        )
