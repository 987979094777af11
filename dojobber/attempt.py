"""One attempt of one job: construct, Check, and if that fails Run + recheck.

One entry point, :func:`run_attempt`: a module-level function of picklable
arguments (the job class, its graph index, the attempt's number and the
run's :class:`AttemptSetup`) returning a picklable :class:`Outcome`, so the
engine can run it inline, on a thread, or send it to another process or host
through any :class:`concurrent.futures.Executor`
(:func:`dojobber._remote.run_attempts_remote` wraps it for that).

One observer argument: an :class:`Observer` hears, in the attempt's own
thread, the instances made that have a ``Cleanup()`` to run (so that Ctrl-C
in the middle of an attempt still cleans them up) and, when its
:attr:`~Observer.hears_phases` is true, each phase as it starts and ends.
Without an observer (another process), an instance with a ``Cleanup()``
comes back in the outcome.  When nobody hears phases, the attempt makes no
call for them, and the first Check's phase includes making the instance
(one clock reading less); its own ``init`` phase is listed only when the
constructor raised.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._check_mode import PLAN_PHASE, call_plan
from ._timeout import (
    Running,
    Slot,
    _abandoned,
    _release,
    abandoned,
)
from .errors import JobTimeoutError
from .job import Job
from .results import WALL_OFFSET

__all__ = [
    "AttemptSetup", "Observer", "Outcome", "RawOutcome", "apply_storage", "expired_outcome",
    "failed_outcome", "run_attempt", "run_timed_attempt", "timed_out_outcome",
]

_perf = time.perf_counter


@dataclass(frozen=True, slots=True)
class AttemptSetup:
    """What every attempt of one run shares."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: The run's ``global_storage`` (a copy, in another process).
    global_storage: dict[str, Any] = field(default_factory=dict)
    #: The directory to restore before each phase: a path, or (in the
    #: engine's own process) a descriptor of it, for ``os.chdir``.
    cwd: str | int = "."
    no_act: bool = False


class Observer:
    """Hears the attempts of one thread as they go.  The base class keeps
    nothing and hears no phases; subclass it (the engine does)."""

    #: Whether :meth:`phase_started` / :meth:`phase_finished` /
    #: :meth:`attempt_ended` are called.
    hears_phases: bool = False
    #: A list ``[job class, phase, attempt, ...]`` that the attempt keeps
    #: up to date with a store per phase (the class None between attempts),
    #: for whoever asks what the thread runs (log capture, progress); None:
    #: nobody asks.  Cheaper than hearing phases: no call per phase.
    where: list[Any] | None = None

    def created(self, job: Job) -> None:
        """An instance with a ``Cleanup()`` was made (not returned in the
        outcome: it is the observer's to keep)."""

    def phase_started(self, job: type[Job], phase: str, attempt: int) -> None:
        """``phase`` (``init``, ``check``, ``run``, ``recheck``) begins."""

    def phase_finished(self, job: type[Job], phase: str, attempt: int, ok: bool,
                       duration: float, error: BaseException | None) -> None:
        """``phase`` ended; ``error`` is what it raised."""

    def attempt_ended(self) -> None:
        """The attempt returned (not called when KeyboardInterrupt or
        SystemExit ends it)."""


class Outcome(NamedTuple):
    """What one attempt found out (the fields of a :data:`RawOutcome`)."""

    #: The job's graph index.
    job_index: int
    attempt: int
    ok: bool
    #: Run was called in this attempt.
    ran: bool
    #: The passing Check's return value; in a dry run, a failed attempt's
    #: ``Plan()`` text (or None).
    result: Any
    exception: BaseException | None
    #: Each a plain tuple of a :class:`~dojobber.results.Phase`'s fields.
    phases: list[tuple[Any, ...]]
    #: The job instance when it has a ``Cleanup()`` to run and no observer
    #: took it, else None.
    instance: Job | None = None
    #: Traceback text, filled in only for attempts run in another process.
    traceback: str | None = None
    #: Remote attempts: global_storage keys set and deleted by the job
    #: (None: the attempt ran in this process).
    storage_set: dict[str, Any] | None = None
    storage_deleted: list[str] | None = None
    #: The failure cannot go away by trying again (no retry).
    final: bool = False


#: What :func:`run_attempt` returns: an :class:`Outcome`'s fields as a
#: plain tuple (``Outcome._make(raw)`` names them).  One is made per attempt
#: of every job, and a named tuple costs 9% of a big run of instant jobs
#: (``benchmarks/bench_engine.py --ab``); the engine unpacks it once.
RawOutcome = tuple[int, int, bool, bool, Any, "BaseException | None", "list[tuple[Any, ...]]",
                   "Job | None", "str | None", "dict[str, Any] | None", "list[str] | None", bool]


def apply_storage(global_storage: dict[str, Any], storage_set: dict[str, Any] | None,
                  storage_deleted: list[str] | None) -> None:
    """Make in ``global_storage`` the changes a remote attempt made in its
    copy (keys set and deleted)."""
    if storage_set:
        global_storage.update(storage_set)
    for key in storage_deleted or ():
        global_storage.pop(key, None)


def failed_outcome(index: int, attempt: int, err: BaseException) -> RawOutcome:
    """An attempt the engine fails without a retry (not sendable, worker
    lost too often, ended by SystemExit)."""
    return (index, attempt, False, False, None, err, [], None, None, None, None, True)


def run_attempt(
    job: type[Job],
    index: int,
    attempt: int,
    setup: AttemptSetup,
    observer: Observer | None = None,
) -> RawOutcome:
    """Run one check -> run -> recheck attempt of ``job`` and report it.

    Only ``Exception`` is caught: KeyboardInterrupt and SystemExit go on.
    """
    # Hot path of every run: one clock reading per phase boundary (a phase
    # starts when the one before it ended, unless an observer heard about it
    # in between), and no call that nobody listens to.
    tell = observer is not None and observer.hears_phases
    where = None if observer is None else observer.where
    args = setup.args
    kwargs = setup.kwargs
    plain = not (args or kwargs)  # a call without * and ** costs half as much
    cwd = setup.cwd
    no_act = setup.no_act
    if where is not None:
        where[0], where[1], where[2] = job, "init", attempt
    if tell:
        observer.phase_started(job, "init", attempt)  # type: ignore[union-attr]
    start = _perf()
    try:
        obj = job()
    except Exception as err:
        now = _perf()
        if where is not None:
            where[0] = None
        if tell:
            observer.phase_finished(job, "init", attempt, False, now - start, err)  # type: ignore[union-attr]
            observer.attempt_ended()  # type: ignore[union-attr]
        return (index, attempt, False, False, None, err,
                [("init", attempt, start + WALL_OFFSET, now - start, False, err)],
                None, None, None, None, False)
    if tell:
        observer.phase_finished(job, "init", attempt, True, _perf() - start, None)  # type: ignore[union-attr]
    kept = None
    if getattr(obj, "Cleanup", None) is not None:
        if observer is None:
            kept = obj
        else:
            observer.created(obj)
    obj.storage = {}
    obj.global_storage = setup.global_storage
    if no_act:
        obj._no_act = True

    # First Check.
    obj._check_phase = "check"
    if where is not None:
        where[1] = "check"
    if tell:
        observer.phase_started(job, "check", attempt)  # type: ignore[union-attr]
        start = _perf()
    os.chdir(cwd)
    try:
        result = obj.Check() if plain else obj.Check(*args, **kwargs)
    except Exception as err:
        now = _perf()
        obj._check_exception = err
        phases: list[tuple[Any, ...]] = [
            ("check", attempt, start + WALL_OFFSET, now - start, False, err)]
        if tell:
            observer.phase_finished(job, "check", attempt, False, now - start, err)  # type: ignore[union-attr]
        if no_act:  # check mode: the Plan's text (if any) is the attempt's result
            plan, unplanned = None, None
            if getattr(obj, "Plan", None) is not None:
                plan, unplanned = _plan(obj, job, attempt, setup, observer if tell else None,
                                        phases, where)
            if where is not None:
                where[0] = None
            if tell:
                observer.attempt_ended()  # type: ignore[union-attr]
            return (index, attempt, False, False, plan, unplanned or err, phases, kept, None,
                    None, None, False)
        # A failing first Check is routine ("not converged yet"); dropping its
        # traceback frees the frames now instead of leaving a reference cycle
        # (exception -> frame -> job -> exception) for the garbage collector.
        err.__traceback__ = None
    else:
        now = _perf()
        obj._check_results = result
        if where is not None:
            where[0] = None
        if tell:
            observer.phase_finished(job, "check", attempt, True, now - start, None)  # type: ignore[union-attr]
            observer.attempt_ended()  # type: ignore[union-attr]
        return (index, attempt, True, False, result, None,
                [("check", attempt, start + WALL_OFFSET, now - start, True, None)],
                kept, None, None, None, False)

    # Run; its exception is recorded, the recheck decides.
    if where is not None:
        where[1] = "run"
    if tell:
        observer.phase_started(job, "run", attempt)  # type: ignore[union-attr]
        now = _perf()
    start = now
    os.chdir(cwd)
    try:
        obj._run_results = obj.Run() if plain else obj.Run(*args, **kwargs)
    except Exception as err:
        now = _perf()
        obj._run_exception = err
        phases.append(("run", attempt, start + WALL_OFFSET, now - start, False, err))
        if tell:
            observer.phase_finished(job, "run", attempt, False, now - start, err)  # type: ignore[union-attr]
    else:
        now = _perf()
        phases.append(("run", attempt, start + WALL_OFFSET, now - start, True, None))
        if tell:
            observer.phase_finished(job, "run", attempt, True, now - start, None)  # type: ignore[union-attr]

    # Recheck.
    obj._check_phase = "recheck"
    if where is not None:
        where[1] = "recheck"
    if tell:
        observer.phase_started(job, "recheck", attempt)  # type: ignore[union-attr]
        now = _perf()
    start = now
    os.chdir(cwd)
    try:
        result = obj.Check() if plain else obj.Check(*args, **kwargs)
    except Exception as err:
        now = _perf()
        obj._recheck_exception = err
        phases.append(("recheck", attempt, start + WALL_OFFSET, now - start, False, err))
        if where is not None:
            where[0] = None
        if tell:
            observer.phase_finished(job, "recheck", attempt, False, now - start, err)  # type: ignore[union-attr]
            observer.attempt_ended()  # type: ignore[union-attr]
        return (index, attempt, False, True, None, err, phases, kept, None, None, None, False)
    now = _perf()
    obj._recheck_results = result
    phases.append(("recheck", attempt, start + WALL_OFFSET, now - start, True, None))
    if where is not None:
        where[0] = None
    if tell:
        observer.phase_finished(job, "recheck", attempt, True, now - start, None)  # type: ignore[union-attr]
        observer.attempt_ended()  # type: ignore[union-attr]
    return (index, attempt, True, True, result, None, phases, kept, None, None, None, False)


def _plan(obj: Job, job: type[Job], attempt: int, setup: AttemptSetup,
          observer: Observer | None, phases: list[tuple[Any, ...]],
          where: list[Any] | None) -> tuple[str | None, Any]:
    """Check mode, after the first Check raised: call the job's ``Plan()``
    as phase ``plan``; ``(its text, None)`` or ``(None, the PlanError)``."""
    if where is not None:
        where[1] = PLAN_PHASE
    if observer is not None:
        observer.phase_started(job, PLAN_PHASE, attempt)
    start = _perf()
    os.chdir(setup.cwd)
    text, error = call_plan(obj.Plan, job.__name__, setup.args, setup.kwargs)  # type: ignore[attr-defined]
    now = _perf()
    phases.append((PLAN_PHASE, attempt, start + WALL_OFFSET, now - start, error is None, error))
    if observer is not None:
        observer.phase_finished(job, PLAN_PHASE, attempt, error is None, now - start, error)
    return text, error


def run_timed_attempt(
    job: type[Job],
    index: int,
    attempt: int,
    setup: AttemptSetup,
    observer: Observer | None,
    slot: Slot,
    timeout: float | None,
) -> RawOutcome | None:
    """:func:`run_attempt` on this thread, published in ``slot`` for the
    thread that watches deadlines (``timeout`` None: no deadline; see
    :mod:`dojobber._timeout`).

    None when the watcher took the attempt (past its ``TIMEOUT``, or
    abandoned after a second Ctrl-C): the watcher recorded it, and this
    thread must run nothing more for the run.  A job whose earlier attempt
    timed out and still runs is not tried: it fails at once with
    :class:`~dojobber.JobTimeoutError`.
    """
    if _abandoned and timeout is not None and abandoned(job):
        return timed_out_outcome(index, attempt, _perf(),
                          JobTimeoutError(job.__name__, timeout, still_running=True))
    # Slot.begin() and ended(), written out: this is every timed attempt's path.
    slot.seq = seq = slot.seq + 1
    slot.index = index
    claim = slot.claim
    claim.append(seq)
    try:
        out = run_attempt(job, index, attempt, setup, observer)
    except BaseException:
        try:
            claim.remove(seq)
        except ValueError:  # taken by the watcher: abandoned
            _release(job)
            return None
        raise
    try:
        claim.remove(seq)
    except ValueError:
        _release(job)
        return None
    return out


def expired_outcome(running: Running, seen_at: float) -> RawOutcome:
    """The outcome of an attempt the watcher took at its deadline
    (:meth:`~dojobber._timeout.Slot.look`; it first saw it at ``seen_at``,
    a perf_counter reading): failed for good with
    :class:`~dojobber.JobTimeoutError`."""
    job, index, attempt, timeout = running
    return timed_out_outcome(index, attempt, seen_at, JobTimeoutError(job.__name__, timeout or 0.0))


def timed_out_outcome(index: int, attempt: int, start: float, error: JobTimeoutError) -> RawOutcome:
    """The outcome of an attempt stopped at its TIMEOUT (no retry)."""
    phases = [("timeout", attempt, start + WALL_OFFSET, _perf() - start, False, error)]
    return (index, attempt, False, False, None, error, phases, None, None, None, None, True)
