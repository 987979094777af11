"""Check mode (a dry run, ``no_act``): what the engine needs to say what
*would* change.

In a dry run each job gets one attempt of its first Check only.  A Check
that raises is upstream's "not done" signal, so the job **would run**
(WOULD_RUN), and its optional ``Plan()`` says what Run would do.  A job
that could not be checked is FAILED: its constructor raised, its attempt
ran past its TIMEOUT or was failed by the engine (not sendable, worker
lost, ``sys.exit()``), or its ``Plan()`` raised or returned something
other than a str or None (:class:`~dojobber.errors.PlanError`).  Jobs that
were never reached are NOT_CHECKED when everything they wait for would run
(or was not checked), and BLOCKED when something they depend on failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._describe import exception_text
from .errors import PlanError
from .results import JobStatus

__all__ = ["PLAN_PHASE", "call_plan", "dry_status", "unreached_status"]

#: The phase name of a ``Plan()`` call (after a failed first Check, in a dry run).
PLAN_PHASE = "plan"

_WOULD_RUN, _FAILED = JobStatus.WOULD_RUN, JobStatus.FAILED
_BLOCKED, _NOT_CHECKED = JobStatus.BLOCKED, JobStatus.NOT_CHECKED


def call_plan(
    plan: Callable[..., Any], job: str, args: tuple[Any, ...], kwargs: dict[str, Any],
) -> tuple[str | None, PlanError | None]:
    """Call a job's bound ``Plan`` method like its Check; ``(text, None)``,
    or ``(None, error)`` when it raised (the error's ``__cause__``) or
    returned neither a str nor None."""
    try:
        text = plan(*args, **kwargs) if (args or kwargs) else plan()
    except Exception as err:
        error = PlanError(job, f"raised {exception_text(err)}")
        error.__cause__ = err
        return None, error
    if text is None or isinstance(text, str):
        return text, None
    return None, PlanError(job, f"returned a {type(text).__name__}, not a str or None")


def dry_status(last_phase: str | None, last_ok: bool) -> JobStatus:
    """The status of a dry-run attempt that did not pass, from its last
    phase: WOULD_RUN when its Check raised (and its Plan, if any, said what
    Run would do); FAILED when it could not be checked (``init``,
    ``timeout``, a failed ``plan``, or no phase: failed by the engine)."""
    if last_phase == "check" or (last_phase == PLAN_PHASE and last_ok):
        return _WOULD_RUN
    return _FAILED


def unreached_status(deps: Sequence[int], status_of: Callable[[int], JobStatus]) -> JobStatus:
    """The status of a job of a dry run that was never attempted, from its
    direct dependencies (settled before it, in graph order): BLOCKED when
    one failed or is blocked, else NOT_CHECKED."""
    statuses = [status_of(d) for d in deps]
    if _FAILED in statuses or _BLOCKED in statuses:
        return _BLOCKED
    return _NOT_CHECKED
