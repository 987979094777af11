"""Attempts run in another process or on another host (an executor's
worker): :func:`~dojobber.attempt.run_attempt` on a copy of the run's
global storage, with what comes back made safe to send (tracebacks as
text, exceptions and instances that would not unpickle replaced), and a
batch of attempts in one task with their TIMEOUTs enforced by the worker.
"""

from __future__ import annotations

import os
import pickle
import time
import traceback

from ._timeout import call_with_timeout_remote, remote_attempts
from .attempt import (
    AttemptSetup,
    Outcome,
    apply_storage,
    run_attempt,
    timed_out_outcome,
)
from .errors import JobTimeoutError, RemoteError
from .job import Job
from .results import Phase

__all__ = ["run_attempt_remote", "run_attempts_remote"]

_perf = time.perf_counter


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
    job: type[Job], index: int, attempt: int, setup: AttemptSetup, submission: int = 0,
) -> Outcome:
    """:func:`run_attempt` for another process or host.

    ``submission`` is unused here; it differs for each submission so that
    executors that name tasks by a hash of their arguments (dask) see an
    attempt sent again after its worker died as a new task.

    Works on a copy of ``setup``'s global storage and reports the keys it
    set or deleted (assign keys rather than mutating values in place: an
    in-place change to a value is not seen).  Formats the traceback,
    replaces an exception that would not unpickle by
    :class:`~dojobber.errors.RemoteError`, and sends the job instance back
    only when it has a ``Cleanup()`` to run.
    """
    snapshot = dict(setup.global_storage)
    storage = dict(snapshot)
    cwd = setup.cwd
    if not (isinstance(cwd, str) and os.path.isdir(cwd)):
        cwd = os.getcwd()  # another host: no such directory here
    outcome = Outcome._make(run_attempt(job, index, attempt, AttemptSetup(
        setup.args, setup.kwargs, storage, cwd, setup.no_act)))
    err = outcome.exception
    text = None
    if err is not None:
        text = "".join(traceback.format_exception(err)).rstrip()
        if not _roundtrips(err):
            err = RemoteError(err, text)
    # A passed attempt can carry its first Check's exception in its phases.
    phases = []
    for raw in outcome.phases:
        p = Phase._make(raw)
        if p.error is not None and p.error is outcome.exception:
            p = p._replace(error=err)
        elif not (p.error is None or _roundtrips(p.error)):
            p = p._replace(error=RemoteError(p.error, None))
        phases.append(tuple(p))
    obj = outcome.instance
    if obj is not None and not _roundtrips(obj):
        obj = None
    missing = object()
    return outcome._replace(
        exception=err,
        phases=phases,
        instance=obj,
        traceback=text,
        storage_set={key: value for key, value in storage.items()
                     if snapshot.get(key, missing) is not value},
        storage_deleted=[key for key in snapshot if key not in storage],
    )


def run_attempts_remote(
    jobs: list[tuple[type[Job], int, int]], setup: AttemptSetup, submission: int = 0,
    timeouts: list[float | None] | None = None,
) -> list[Outcome]:
    """:func:`run_attempt_remote` for a batch of ``(job, index, attempt)``,
    one after another in one task; each attempt sees what the ones before it
    stored in (this copy of) global storage.  ``timeouts``: each one's
    TIMEOUT (None: none), enforced here (see :mod:`dojobber._timeout`)."""
    storage = dict(setup.global_storage)
    here = AttemptSetup(setup.args, setup.kwargs, storage, setup.cwd, setup.no_act)
    outcomes = []
    with remote_attempts():
        for k, (job, index, attempt) in enumerate(jobs):
            timeout = None if timeouts is None else timeouts[k]
            if timeout is None:
                out = run_attempt_remote(job, index, attempt, here)
            else:
                out = _timed_remote(job, index, attempt, here, timeout)
            apply_storage(storage, out.storage_set, out.storage_deleted)
            outcomes.append(out)
    return outcomes


def _timed_remote(job: type[Job], index: int, attempt: int, setup: AttemptSetup,
                  timeout: float) -> Outcome:
    """:func:`run_attempt_remote` stopped at ``timeout`` seconds (by the
    worker itself: see :mod:`dojobber._timeout`)."""
    start = _perf()
    done, out = call_with_timeout_remote(
        timeout, lambda: run_attempt_remote(job, index, attempt, setup))
    if done and out is not None:
        return out
    raw = timed_out_outcome(index, attempt, start, JobTimeoutError(job.__name__, timeout))
    return Outcome._make(raw)._replace(storage_set={}, storage_deleted=[])
