"""The engine: one ``checknrun()``, from the first attempt to the results.

A :class:`~dojobber._schedule.Schedule` decides which job may be attempted
and when (dependencies first, lowest graph index first, a retry only after
other runnable work had its turn and its ``RETRY_DELAY`` passed).  The
engine drives it, one attempt at a time through
:func:`~dojobber._inline.run_inline` (``workers=1``; with TIMEOUTs,
:func:`~dojobber._inline.run_watched`) or through
:func:`~dojobber._pool.run_pooled` on a thread pool (``workers=N``) or any
:class:`concurrent.futures.Executor`; it folds each attempt's
:class:`~dojobber.attempt.Outcome` into the job's :class:`JobResult`, tells
the schedule how the attempt ended, and tells listeners.  It never prints.

The attempts of this process hear about it through an
:class:`~dojobber.attempt.Observer` made by :meth:`Engine.observing`: it
keeps the instances with a ``Cleanup()`` (so that Ctrl-C in the middle of
an attempt still cleans them up) and, when a listener wants phase events,
log records or progress, sends the phase events and notes in the thread's
slot which job and phase run (see :mod:`dojobber._context`).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from itertools import compress
from typing import Any

from ._check_mode import dry_status, unreached_status
from ._context import LogRouter, Slot, phase_slot
from ._gc import relaxed_gc
from ._inline import run_inline, run_watched
from ._pool import run_pooled
from ._schedule import Schedule
from .attempt import (
    AttemptSetup,
    Observer,
    RawOutcome,
    apply_storage,
)
from .errors import gave_up
from .events import EventBus, RunInfo
from .graph import JobGraph
from .job import Job
from .results import JobResult, JobStatus, Phase, RunResult

__all__ = ["Engine"]

_OK, _CHANGED, _FAILED = JobStatus.OK, JobStatus.CHANGED, JobStatus.FAILED


class _Keeper(Observer):
    """Keeps the instances with a ``Cleanup()``; hears no phases."""

    def __init__(self, instances: list[Job]) -> None:
        self.instances = instances

    def created(self, job: Job) -> None:
        self.instances.append(job)


class _Teller(_Keeper):
    """Also has the attempts note the running job and phase in this thread's
    slot (:attr:`where`, read for log records and progress), and sends
    phase events when ``emit`` is given (someone wants them)."""

    def __init__(self, instances: list[Job], emit: Callable[..., None] | None,
                 slot: Slot) -> None:
        super().__init__(instances)
        #: (Called only when hears_phases: emit was given.)
        self.emit: Callable[..., None] = emit or _nowhere
        self.hears_phases = emit is not None
        self.where = self._slot = slot

    def phase_started(self, job: type[Job], phase: str, attempt: int) -> None:
        if phase == "init":
            self.emit("job_started", job.__name__, attempt)
        self.emit("phase_started", job.__name__, phase, attempt)

    def phase_finished(self, job: type[Job], phase: str, attempt: int, ok: bool,
                       duration: float, error: BaseException | None) -> None:
        self.emit("phase_finished", job.__name__, phase, attempt, ok, duration, error)

    def attempt_ended(self) -> None:
        self._slot[0] = None


def _nowhere(*args: Any) -> None:
    """What a _Teller that hears no phases would emit them to."""


class Engine:
    """One ``checknrun()`` over a graph (or the part below one job of it)."""

    #: The schedule of the run (made by :meth:`run`).
    schedule: Schedule

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
        #: The run's schedule, once :meth:`run` has made it.
        self._schedule: Schedule | None = None
        self._stop_asked = False
        #: Jobs (by index) whose attempts were abandoned still running after
        #: a second Ctrl-C: their Cleanup must not run.
        self.abandoned: set[int] = set()
        # Which per-job events anyone listens to (the others are not made).
        self._tell_attempts = self.bus.caller("attempt_finished")
        self._tell_jobs = self.bus.caller("job_finished")
        #: Results for listeners that take them in batches (jobs_finished).
        self.finished = self.bus.batch("jobs_finished")
        #: Anyone wants to hear when a job's status is final.
        self._tell_final = self._tell_jobs is not None or self.finished is not None

    @property
    def stopping(self) -> bool:
        """Set (from any thread) to stop after the attempts now running."""
        return self._stop_asked

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self._stop_asked = value
        if value and self._schedule is not None:
            self._schedule.stop()

    # ------------------------------------------------------------------
    def run(self, target: int) -> RunResult:
        """Converge ``target`` and everything it depends on."""
        graph = self.graph
        started = time.time()
        schedule = self._schedule = self.schedule = Schedule(graph, target, no_act=self.no_act)
        if self._stop_asked:
            schedule.stop()
        if self.bus:
            self.bus.emit(
                "run_started",
                RunInfo(
                    root=graph.root_name,
                    target=graph.names[target],
                    jobs=tuple(compress(graph.names, schedule.in_run)),
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
        setup = AttemptSetup(self.args, self.kwargs, self.global_storage,
                             self.cwd if cwd_fd is None else cwd_fd, self.no_act)
        try:
            with relaxed_gc(schedule.jobs), LogRouter(self.bus) if self.bus else nullcontext(), \
                    self.finished.ticking() if self.finished is not None else nullcontext():
                if self.executor is None and self.workers <= 1:
                    if graph.timeouts is None:
                        run_inline(self, schedule, setup)
                    else:
                        run_watched(self, schedule, setup)
                else:
                    run_pooled(self, schedule, setup, executor=self.executor,
                               workers=self.workers, remote_cwd=self.cwd)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if cwd_fd is not None:
                os.close(cwd_fd)
            self.result = self._finish(schedule, target, started, interrupted)
        return self.result

    # -- what the loops call ---------------------------------------------
    @contextmanager
    def observing(self) -> Iterator[Observer]:
        """The observer for the attempts this thread runs in this process:
        it keeps instances with a ``Cleanup()``; it hears phases only when a
        listener wants phase events, log records or progress."""
        bus = self.bus
        wants = bus.wants if bus else None
        if wants is None or not (wants("log") or wants("progress") or any(
                wants(e) for e in ("job_started", "phase_started", "phase_finished"))):
            yield _Keeper(self.instances)
            return
        phases = any(wants(e) for e in ("job_started", "phase_started", "phase_finished"))
        with phase_slot(bus.emit) as slot:
            yield _Teller(self.instances, bus.emit if phases else None, slot)

    def record(self, out: RawOutcome) -> None:
        """Fold an attempt's outcome into its job's result, tell the
        schedule how it ended, and tell listeners."""
        (i, attempt, ok, ran, result, exception, phases, instance, text, storage_set,
         storage_deleted, final) = out
        if storage_set is not None:  # it ran in another process
            apply_storage(self.global_storage, storage_set, storage_deleted)
            if self.bus:
                self._replay(i, attempt, phases)
        if instance is not None:
            self.instances.append(instance)
        res = self.results[i]
        if res is None:  # its first attempt (the usual case)
            # (Positional: keywords cost 8% of a big run of instant jobs.)
            res = self.results[i] = JobResult(
                self.graph.names[i], self.graph.classes[i],
                (_CHANGED if ran else _OK) if ok else _FAILED,
                1, result, exception, phases, 0, text, i,
            )
        else:
            res.tries += 1
            res._phases.extend(phases)
            ran = any(p.name == "run" for p in res.phases)
            res.status = (_CHANGED if ran else _OK) if ok else _FAILED
            res.result = result
            res.exception = exception
            res._traceback = text
        if not ok and self.no_act:
            _dry_run_status(res, phases, result)
        if ok:
            self.schedule.passed(i)
            retry = False
        else:
            retry = self.schedule.failed(
                i, retry=not (final or gave_up(exception))) is not None
        if self._tell_attempts is not None:
            self._tell_attempts(res.name, attempt, ok, retry)
        if not retry and self._tell_final:
            self._job_final(res)

    def lost(self, i: int) -> int:
        """Note an attempt of job ``i`` lost with its worker; return how many
        of its attempts were lost so far."""
        res = self.results[i]
        if res is None:
            res = self.results[i] = JobResult(self.graph.names[i], self.graph.classes[i],
                                              index=i)
        res.lost_attempts += 1
        return res.lost_attempts

    def before_wait(self) -> None:
        """Send the results batched for ``jobs_finished`` now: the loop is
        about to wait (for a retry's delay, or for a worker)."""
        if self.finished is not None:
            self.finished.send()

    # ------------------------------------------------------------------
    def _job_final(self, res: JobResult) -> None:
        """Tell listeners that ``res`` is final for this run."""
        if self._tell_jobs is not None:
            self._tell_jobs(res)
        if self.finished is not None:
            self.finished.add(res, time.perf_counter())

    def _replay(self, i: int, attempt: int, phases: list[tuple[Any, ...]]) -> None:
        """Tell listeners the phases of an attempt that ran elsewhere."""
        name = self.graph.names[i]
        emit = self.bus.emit
        emit("job_started", name, attempt)
        for phase in map(Phase._make, phases):
            emit("phase_started", name, phase.name, phase.attempt)
            emit("phase_finished", name, phase.name, phase.attempt, phase.ok,
                 phase.duration, phase.error)

    def _finish(self, schedule: Schedule, target: int, started: float,
                interrupted: bool) -> RunResult:
        graph = self.graph
        results = self.results
        if None not in results:  # every job was attempted: the usual end
            jobs: dict[str, JobResult] = dict(zip(graph.names, results, strict=True))  # type: ignore[arg-type]
        else:
            blocked = schedule.blocked()
            jobs = {}
            for i, name in enumerate(graph.names):
                res = results[i]
                if res is None:
                    res = JobResult(name, graph.classes[i], index=i)
                    if blocked[i]:
                        res.status = JobStatus.BLOCKED if not self.no_act else unreached_status(
                            graph.deps[i], lambda d: jobs[graph.names[d]].status)
                        self._job_final(res)
                jobs[name] = res
        self.before_wait()
        return RunResult(
            graph=graph,
            jobs=jobs,
            target=graph.names[target],
            no_act=self.no_act,
            started=started,
            finished=time.time(),
            interrupted=interrupted,
            stopped=schedule.stopped,
        )


def _dry_run_status(res: JobResult, phases: list[tuple[Any, ...]], plan: Any) -> None:
    """Check mode: a dry-run attempt that did not pass would run (its Check
    raised; ``plan`` is what its Plan() said), or could not be checked
    (see :mod:`dojobber._check_mode`)."""
    last = phases[-1] if phases else None
    res.status = dry_status(last[0] if last else None, bool(last and last[4]))
    res.result = None
    if res.status is JobStatus.WOULD_RUN:
        res.plan = plan
