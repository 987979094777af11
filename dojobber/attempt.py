"""One attempt of one job: construct, Check, and if that fails Run + recheck.

:func:`run_attempt` is a plain module-level function of picklable arguments
returning a picklable :class:`Outcome`, so the engine can run it inline, on a
thread, or send it to another process or host through any
:class:`concurrent.futures.Executor`.  Attempts in the engine's own process
skip the object: :func:`attempt_function` gives the bare attempt, which
returns an :data:`Attempted` tuple (one is made per job of a run, and a tuple
is several times cheaper to make and to read than an object).
"""

from __future__ import annotations

import os
import pickle
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._context import Slot
from .errors import JobTimeoutError, RemoteError
from .job import Job
from .results import PHASE_FIELDS

__all__ = [
    "Outcome", "attempt_function", "run_attempt", "run_attempt_remote", "run_attempts_remote",
]

#: ``emit(event, *args)``: the engine's event bus, or None for no live events.
Emit = Callable[..., None]

_perf = time.perf_counter
_chdir = os.chdir  # (restores the working directory before each phase)

#: What an attempt in this process returns: ``(index, attempt, ok, ran,
#: result, exception, phases)``, as the fields of :class:`Outcome`.
Attempted = tuple[int, int, bool, bool, Any, "BaseException | None", list[Any]]


@dataclass(slots=True)
class Outcome:
    """What one attempt found out."""

    index: int
    attempt: int
    ok: bool
    #: Run was called in this attempt.
    ran: bool
    result: Any
    exception: BaseException | None
    #: Flat: six values per phase, in :class:`~dojobber.results.Phase` field order.
    phases: list[Any]
    #: The job instance when it has a ``Cleanup()`` to run, else None.
    instance: Job | None
    #: Traceback text, filled in only for attempts run in another process.
    traceback: str | None = None
    #: Remote attempts: global_storage keys set and deleted by the job.
    storage_set: dict[str, Any] | None = None
    storage_deleted: list[str] | None = None
    #: The failure cannot go away by trying again (no retry).
    final: bool = False

    @classmethod
    def of(cls, attempted: Attempted, instance: Job | None = None) -> Outcome:
        """The outcome of a bare attempt (see :func:`attempt_function`)."""
        return cls(*attempted, instance)

    def attempted(self) -> Attempted:
        """The fields a bare attempt returns, as it returns them."""
        return (self.index, self.attempt, self.ok, self.ran, self.result, self.exception,
                self.phases)

    def apply_storage(self, global_storage: dict[str, Any]) -> None:
        """Make in ``global_storage`` the changes a remote attempt made in
        its copy (keys set and deleted)."""
        if self.storage_set:
            global_storage.update(self.storage_set)
        for key in self.storage_deleted or ():
            global_storage.pop(key, None)


def run_attempt(
    job: type[Job],
    index: int,
    attempt: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    global_storage: dict[str, Any],
    cwd: str | int,
    no_act: bool = False,
    emit: Emit | None = None,
    on_created: Callable[[Job], None] | None = None,
    track: Slot | None = None,
) -> Outcome:
    """Run one check -> run -> recheck attempt of ``job`` and report it.

    Only ``Exception`` is caught: KeyboardInterrupt and SystemExit go on.
    The instance comes back in the outcome when it has a ``Cleanup()``
    (unless ``on_created`` took it).
    With ``emit``, phases are announced live; with ``track`` (this thread's
    :func:`~dojobber._context.phase_slot`), the attempt notes in it which
    job and phase it runs, so that log records and progress made meanwhile
    reach listeners attributed to the job.
    """
    made: list[Job] = []
    keep = made.append if on_created is None else on_created
    try:
        attempted = _attempt(job, index, attempt, args, kwargs, global_storage, cwd, no_act,
                             emit, keep, track)
    finally:
        if track is not None:
            track[0] = None
    return Outcome.of(attempted, made[0] if made else None)


def attempt_function() -> Callable[..., Attempted]:
    """:func:`run_attempt` without its wrapper (one call less per job in a
    big run), for the engine and its threads: it returns an
    :data:`Attempted` tuple, hands an instance with a ``Cleanup()`` to
    ``on_created``, and empties its ``track`` slot when it returns; after an
    exception that ends it (KeyboardInterrupt, SystemExit), the slot's owner
    does."""
    return _attempt


def _attempt(
    job: type[Job],
    index: int,
    attempt: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    global_storage: dict[str, Any],
    cwd: str | int,
    no_act: bool = False,
    emit: Emit | None = None,
    on_created: Callable[[Job], None] | None = None,
    track: Slot | None = None,
) -> Attempted:
    # Hot path of every run: one clock reading per phase boundary (a phase
    # starts when the one before it ended, unless events were sent between),
    # and no call that nobody listens to.  Without phase events the first
    # Check's phase includes making the instance (its own "init" phase is
    # recorded only when the constructor raises).
    name = job.__name__ if emit is not None else ""
    plain = not (args or kwargs)  # a call without * and ** costs half as much
    if emit is not None:
        emit("job_started", name, attempt)
        emit("phase_started", name, "init", attempt)
    if track is not None:
        track[0], track[1], track[2] = job, "init", attempt  # (named when read)
    start = _perf()
    try:
        obj = job()
    except Exception as err:
        now = _perf()
        if emit is not None:
            emit("phase_finished", name, "init", attempt, False, now - start, err)
        if track is not None:
            track[0] = None
        return (index, attempt, False, False, None, err,
                ["init", attempt, start, now - start, False, err])
    if emit is not None:
        emit("phase_finished", name, "init", attempt, True, _perf() - start, None)
    if on_created is not None and getattr(obj, "Cleanup", None) is not None:
        on_created(obj)
    obj.storage = {}
    obj.global_storage = global_storage
    if no_act:
        obj._no_act = True

    # First Check.
    obj._check_phase = "check"
    if emit is not None:
        emit("phase_started", name, "check", attempt)
        start = _perf()
    # (Else the first Check's time counts from the attempt's start: making
    # the instance is part of it, and that is one clock reading less.)
    if track is not None:
        track[1] = "check"
    _chdir(cwd)
    try:
        result = obj.Check() if plain else obj.Check(*args, **kwargs)
    except Exception as err:
        now = _perf()
        obj._check_exception = err
        phases: list[Any] = ["check", attempt, start, now - start, False, err]
        if emit is not None:
            emit("phase_finished", name, "check", attempt, False, now - start, err)
        if no_act:
            if track is not None:
                track[0] = None
            return index, attempt, False, False, None, err, phases
        # A failing first Check is routine ("not converged yet"); dropping its
        # traceback frees the frames now instead of leaving a reference cycle
        # (exception -> frame -> job -> exception) for the garbage collector.
        err.__traceback__ = None
    else:
        now = _perf()
        obj._check_results = result
        if emit is not None:
            emit("phase_finished", name, "check", attempt, True, now - start, None)
        if track is not None:
            track[0] = None
        return (index, attempt, True, False, result, None,
                ["check", attempt, start, now - start, True, None])

    # Run; its exception is recorded, the recheck decides.
    if emit is not None:
        emit("phase_started", name, "run", attempt)
    if track is not None:
        track[1] = "run"
    start = _perf() if emit is not None else now
    _chdir(cwd)
    try:
        obj._run_results = obj.Run() if plain else obj.Run(*args, **kwargs)
    except Exception as err:
        now = _perf()
        obj._run_exception = err
        phases += "run", attempt, start, now - start, False, err
        if emit is not None:
            emit("phase_finished", name, "run", attempt, False, now - start, err)
    else:
        now = _perf()
        phases += "run", attempt, start, now - start, True, None
        if emit is not None:
            emit("phase_finished", name, "run", attempt, True, now - start, None)

    # Recheck.
    obj._check_phase = "recheck"
    if emit is not None:
        emit("phase_started", name, "recheck", attempt)
    if track is not None:
        track[1] = "recheck"
    start = _perf() if emit is not None else now
    _chdir(cwd)
    try:
        result = obj.Check() if plain else obj.Check(*args, **kwargs)
    except Exception as err:
        now = _perf()
        obj._recheck_exception = err
        phases += "recheck", attempt, start, now - start, False, err
        if emit is not None:
            emit("phase_finished", name, "recheck", attempt, False, now - start, err)
        if track is not None:
            track[0] = None
        return index, attempt, False, True, None, err, phases
    now = _perf()
    obj._recheck_results = result
    phases += "recheck", attempt, start, now - start, True, None
    if emit is not None:
        emit("phase_finished", name, "recheck", attempt, True, now - start, None)
    if track is not None:
        track[0] = None
    return index, attempt, True, True, result, None, phases


def _roundtrips(value: object) -> bool:
    """Whether ``value`` survives pickling (cloudpickle when installed: it is
    what dask uses to send results back)."""
    try:
        import cloudpickle

        dumps, loads = cloudpickle.dumps, cloudpickle.loads
    except ImportError:
        dumps, loads = pickle.dumps, pickle.loads
    try:
        loads(dumps(value))
    except Exception:
        return False
    return True


def run_attempt_remote(
    job: type[Job],
    index: int,
    attempt: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    global_storage: dict[str, Any],
    cwd: str,
    no_act: bool = False,
    submission: int = 0,
) -> Outcome:
    """:func:`run_attempt` for another process or host.

    ``submission`` is unused here; it differs for each submission so that
    executors that name tasks by a hash of their arguments (dask) see an
    attempt sent again after its worker died as a new task.

    Works on its copy of global storage and reports the keys it set or
    deleted (assign keys rather than mutating values in place: an in-place
    change to a value is not seen).  Formats the traceback, replaces an
    exception that would not unpickle by :class:`~dojobber.errors.RemoteError`,
    and sends the job instance back only when it has a ``Cleanup()`` to run.
    """
    snapshot = dict(global_storage)
    storage = dict(global_storage)
    if not os.path.isdir(cwd):
        cwd = os.getcwd()  # another host: no such directory here
    outcome = run_attempt(job, index, attempt, args, kwargs, storage, cwd, no_act)
    err = outcome.exception
    if err is not None:
        outcome.traceback = "".join(traceback.format_exception(err)).rstrip()
        if not _roundtrips(err):
            outcome.exception = RemoteError(err, outcome.traceback)
    # A passed attempt can carry its first Check's exception in its phases.
    phases = outcome.phases
    for k in range(5, len(phases), PHASE_FIELDS):
        error = phases[k]
        if not (error is None or error is outcome.exception or _roundtrips(error)):
            phases[k] = RemoteError(error, None)
    obj = outcome.instance
    if obj is not None and not (callable(getattr(obj, "Cleanup", None)) and _roundtrips(obj)):
        outcome.instance = None
    missing = object()
    outcome.storage_set = {
        key: value for key, value in storage.items() if snapshot.get(key, missing) is not value
    }
    outcome.storage_deleted = [key for key in snapshot if key not in storage]
    return outcome


def run_attempts_remote(
    jobs: list[tuple[type[Job], int, int]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    global_storage: dict[str, Any],
    cwd: str,
    no_act: bool = False,
    submission: int = 0,
    timeouts: list[float | None] | None = None,
) -> list[Outcome]:
    """:func:`run_attempt_remote` for a batch of ``(job, index, attempt)``,
    one after another in one task; each attempt sees what the ones before it
    stored in (this copy of) global storage.  ``timeouts``: each one's
    TIMEOUT (None: none), enforced here (see :mod:`dojobber._timeout`)."""
    outcomes = []
    for k, (job, index, attempt) in enumerate(jobs):
        timeout = None if timeouts is None else timeouts[k]
        if timeout is not None:
            outcomes.append(_timed_remote(job, index, attempt, args, kwargs, global_storage,
                                          cwd, no_act, timeout))
            continue
        out = run_attempt_remote(job, index, attempt, args, kwargs, global_storage, cwd, no_act)
        out.apply_storage(global_storage)
        outcomes.append(out)
    return outcomes


def _timed_remote(
    job: type[Job], index: int, attempt: int, args: tuple[Any, ...], kwargs: dict[str, Any],
    global_storage: dict[str, Any], cwd: str, no_act: bool, timeout: float,
) -> Outcome:
    """:func:`run_attempt_remote` stopped at ``timeout`` seconds."""
    from ._timeout import call_with_timeout_remote

    start = _perf()
    done, out = call_with_timeout_remote(timeout, lambda: run_attempt_remote(
        job, index, attempt, args, kwargs, global_storage, cwd, no_act))
    if done and out is not None:
        out.apply_storage(global_storage)
        return out
    error = JobTimeoutError(job.__name__, timeout)
    return Outcome(index, attempt, False, False, None, error,
                   ["timeout", attempt, start, _perf() - start, False, error], None,
                   storage_set={}, storage_deleted=[], final=True)
