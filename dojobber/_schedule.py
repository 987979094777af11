"""Which jobs of a run may be attempted, and when: the :class:`Schedule`.

Shaped like :class:`graphlib.TopologicalSorter`: the loop that runs
attempts takes ready jobs out and tells the schedule how each attempt
ended; the schedule answers with what is ready next.  It knows nothing of
results, listeners, threads or executors: the inline loop
(:mod:`dojobber.engine`) and the pooled loop (:mod:`dojobber._pool`) drive
the same schedule through the methods below, and the engine folds the
attempts' outcomes into results.

Jobs are graph indices.  The API, and what each call means:

=========================  ==============================================
out: ``next_ready()``      the lowest-numbered ready job, or None
out: ``get_ready(n)``      up to ``n`` ready jobs, lowest first
out: ``retry_due()``       when the earliest retry may start (monotonic)
out: ``take_retry()``      that retry's job (the caller waited until due)
in: ``passed(i)``          ``i`` succeeded: its dependants count down
in: ``failed(i)``          ``i`` failed: retried later if it has tries
                           left (returns the retry's due time), else
                           failed for good; ``retry=False`` fails it for
                           good now (a failure that trying again cannot
                           mend: a job that gave up, an attempt that
                           cannot be sent)
in: ``put_back(i)``        an attempt handed out but never started (or
                           lost with its worker): ``i`` is ready again
                           with the same attempt number
``stop()``                 release nothing more (running attempts end)
derived: ``blocked()``     jobs of the run never released because a job
                           they depend on failed
=========================  ==============================================

Ordering (upstream DoJobber's): ready jobs come out lowest graph index
first (the graph numbers jobs in depth-first post-order over ``DEPS``), so
a sequential run tries jobs in the order upstream does.  A failed job with
tries left waits in a second queue until its ``RETRY_DELAY`` (or its Backoff's delay) has passed and
comes out of ``take_retry()`` only; loops take a retry only when no fresh
job is ready, so a retry never overtakes other runnable work.  With
``no_act`` nothing is retried.

Unlike :class:`graphlib.TopologicalSorter`, the schedule does not count the
attempts handed out: each loop knows what it has running.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from itertools import compress
from operator import not_

from .graph import JobGraph

__all__ = ["Schedule"]


class Schedule:
    """The scheduling state of one run of ``graph`` towards job ``target``."""

    def __init__(
        self,
        graph: JobGraph,
        target: int,
        *,
        no_act: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.graph = graph
        self.no_act = no_act
        self._clock = clock
        #: Which jobs this run may try (``target`` and what it depends on).
        self.in_run: list[bool] = graph.reachable(target)
        # Dependencies not passed yet, per job; -1 for a job outside this
        # run, so that it never counts down to ready.
        if target == len(graph) - 1:  # the root: every job is in the run
            waiting = list(map(len, graph.deps))
        else:
            waiting = [len(deps) if inside else -1
                       for deps, inside in zip(graph.deps, self.in_run, strict=True)]
        self._waiting = waiting
        #: Number of jobs in the run.
        self.jobs = len(waiting) - waiting.count(-1)
        # The jobs ready at the start are taken from this list, lowest first;
        # the heap holds only those that became ready since (a wide graph's
        # leaves then cost no heap operation each).
        self._first = list(compress(range(len(waiting)), map(not_, waiting)))
        self._first.reverse()  # (taken from the end)
        self._ready: list[int] = []
        #: Retries waiting: (due, sequence, job), a heap.
        self._retry: list[tuple[float, int, int]] = []
        self._seq = 0
        #: Failed attempts per job (so the next attempt's number).
        self._failures: dict[int, int] = {}
        #: Jobs failed for good, in the order they failed.
        self._failed: list[int] = []
        self.stopped = False

    # -- out ------------------------------------------------------------
    def next_ready(self) -> int | None:
        """The lowest-numbered ready job (no retry), or None."""
        if self.stopped:
            return None
        first, ready = self._first, self._ready
        if first and not (ready and ready[0] < first[-1]):
            return first.pop()
        if ready:
            return heapq.heappop(ready)
        return None

    def get_ready(self, n: int) -> list[int]:
        """Up to ``n`` ready jobs (no retries), lowest-numbered first."""
        out: list[int] = []
        while len(out) < n:
            i = self.next_ready()
            if i is None:
                break
            out.append(i)
        return out

    def ready_count(self) -> int:
        """How many jobs ``next_ready()`` would give now."""
        if self.stopped:
            return 0
        return len(self._first) + len(self._ready)

    def retry_due(self) -> float | None:
        """When (a reading of the schedule's clock) the earliest waiting
        retry may start, or None when none waits (or after :meth:`stop`)."""
        if self._retry and not self.stopped:
            return self._retry[0][0]
        return None

    def take_retry(self) -> int:
        """The job of the earliest waiting retry, taken out of the queue.
        Call it once :meth:`retry_due` has come (the schedule does not wait)."""
        return heapq.heappop(self._retry)[2]

    def attempt_number(self, i: int) -> int:
        """The number (1-based) of job ``i``'s next attempt."""
        return self._failures.get(i, 0) + 1

    # -- in -------------------------------------------------------------
    def passed(self, i: int) -> None:
        """Job ``i`` succeeded: the jobs waiting for it only now are ready."""
        waiting = self._waiting
        for d in self.graph.dependants[i]:
            count = waiting[d] - 1
            waiting[d] = count
            if not count:
                heapq.heappush(self._ready, d)

    def failed(self, i: int, *, retry: bool = True) -> float | None:
        """Job ``i``'s attempt failed.  With tries left (and ``retry``, and
        not ``no_act``), it is retried: returns when the retry is due.  Else
        None: the job has failed for good, and what depends on it is
        :meth:`blocked`."""
        failures = self._failures.get(i, 0) + 1
        self._failures[i] = failures
        graph = self.graph
        if retry and not self.no_act and failures < graph.tries[i]:
            self._seq += 1
            backoff = graph.backoffs.get(i) if graph.backoffs else None
            due = self._clock() + (graph.delays[i] if backoff is None else backoff.delay(failures))
            heapq.heappush(self._retry, (due, self._seq, i))
            return due
        self._failed.append(i)
        return None

    def put_back(self, i: int) -> None:
        """An attempt of ``i`` handed out was not made (never started, or
        lost with its worker): ``i`` is ready again, same attempt number."""
        heapq.heappush(self._ready, i)

    def stop(self) -> None:
        """Release nothing more; attempts already out may still be reported.
        Safe to call from any thread."""
        self.stopped = True

    # -- derived --------------------------------------------------------
    def is_active(self) -> bool:
        """Whether anything is left to release (ready now, or a retry)."""
        return not self.stopped and bool(self.ready_count() or self._retry)

    def failed_jobs(self) -> list[int]:
        """Jobs failed for good, then those still waiting for a retry."""
        return self._failed + [i for _, _, i in self._retry]

    def blocked(self) -> list[bool]:
        """Per job: in the run, never released, and depending (directly or
        not) on a job that failed (for good, or waiting for a retry when
        the run ended)."""
        failed = self.failed_jobs()
        if not failed:
            return [False] * len(self._waiting)
        upstream = self.graph.upstream_of(failed)
        released = set(failed)
        return [hit and inside and i not in released
                for i, (hit, inside) in enumerate(zip(upstream, self.in_run, strict=True))]
