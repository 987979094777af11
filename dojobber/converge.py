"""Rounds until the graph converges: :meth:`DoJobber.converge`.

"Rerun the script until it converges", built in.  Each round is an ordinary
``checknrun()`` with fresh state (a new engine, new instances, a new
``global_storage``; the ``lock`` of ``configure()`` is held per round, not
across the waits).  After a round that did not converge the session waits,
per a :class:`~dojobber.backoff.Backoff`, and runs again, until:

``converged``
    a round succeeded;
``exhausted``
    the limits ran out: ``max_rounds`` rounds were run, the deadline
    (``within``) would pass before the next round could start, or
    ``max_stuck_rounds`` rounds in a row failed the same way;
``gave_up``
    a job failed with :class:`~dojobber.GiveUp` ("retrying will not fix
    this"): the session stops after that round;
``interrupted``
    :meth:`DoJobber.stop` (the round stops after its running attempts) or
    :meth:`DoJobber.stop_after_round` was called, or Ctrl-C came (the
    KeyboardInterrupt goes on after the result is kept in
    :attr:`DoJobber.converge_result` and told to listeners).

No-progress rule.  A round *made progress* when its failures (each failed
job with its exception's type and message, and the blocked jobs) differ
from the previous round's.  After a round that made progress the wait
starts again from the backoff's ``initial``; after a round that failed the
same way it grows (``initial * factor ** k`` for the k-th such round in a
row, up to ``max``).  A round with the same failures does not end the
session: an OBS build still running or a guest still booting fails the
same way until it does not.  Give ``max_stuck_rounds=N`` to stop after N
such rounds in a row (verdict ``exhausted``).

The deadline is checked between rounds only: a round that has started is
not cut short (bound single jobs with ``TIMEOUT``).  When the next wait
would end at or after the deadline, the session ends at once rather than
sleep until a moment when no round may start.
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from .backoff import Backoff, parse_duration
from .errors import ConfigurationError, gave_up
from .events import RoundInfo
from .results import JobResult, JobStatus, RunOutcome, RunResult

if TYPE_CHECKING:
    from .dojobber import DoJobber
    from .job import Job

__all__ = ["DEFAULT_BACKOFF", "DEFAULT_MAX_ROUNDS", "ConvergeResult", "Verdict", "converge"]

#: Wait between rounds when ``backoff`` is not given: 5 s doubling to 5 min.
DEFAULT_BACKOFF = Backoff(5.0, 2.0, 300.0, 0.1)
#: Rounds when neither ``max_rounds`` nor ``within`` is given.
DEFAULT_MAX_ROUNDS = 10


class Verdict(str, enum.Enum):
    """How a converge session ended."""

    CONVERGED = "converged"
    #: The limits ran out (rounds, deadline, or stuck rounds).
    EXHAUSTED = "exhausted"
    #: A job raised :class:`~dojobber.GiveUp`.
    GAVE_UP = "gave_up"
    INTERRUPTED = "interrupted"
    #: A dry round (``no_act``) found jobs that would run: a dry run
    #: changes nothing, so another round would only find them again.
    CHANGES_PENDING = "changes_pending"

    @property
    def text(self) -> str:
        return {
            "converged": "converged", "exhausted": "limits ran out",
            "gave_up": "gave up", "interrupted": "interrupted",
            "changes_pending": "changes pending",
        }[self.value]


@dataclass(eq=False)
class ConvergeResult:
    """What :meth:`DoJobber.converge` did: every round's result, the waits
    between them and the verdict."""

    session: str
    rounds: list[RunResult] = field(default_factory=list)
    #: Seconds waited before round 2, 3, ... (one less than the rounds, or
    #: equal when the session was interrupted while waiting).
    waits: list[float] = field(default_factory=list)
    verdict: Verdict = Verdict.INTERRUPTED
    #: Why the session ended, in words.
    reason: str = ""
    started: float = 0.0
    finished: float = 0.0

    @property
    def last(self) -> RunResult | None:
        """The last round's result (None when no round ran)."""
        return self.rounds[-1] if self.rounds else None

    @property
    def gave_up(self) -> list[JobResult]:
        """The jobs of the last round that gave up."""
        last = self.last
        return [] if last is None else _gave_up(last)

    def success(self) -> bool:
        return self.verdict is Verdict.CONVERGED

    @property
    def duration(self) -> float:
        return self.finished - self.started

    def summary(self) -> str:
        """One line: the verdict, the rounds, the time, why."""
        n = len(self.rounds)
        text = f"{self.verdict.text} after {n} round{'' if n == 1 else 's'}"
        text += f" in {self.duration:.1f}s"
        return f"{text}: {self.reason}" if self.reason else text

    def report(self) -> str:
        """A plain-text table of the rounds, then :meth:`summary`."""
        lines = ["ROUND  OUTCOME           OK  CHANGED  FAILED  BLOCKED  TIME     THEN WAITED"]
        for n, run in enumerate(self.rounds, 1):
            counts = run.counts()
            outcome = run.outcome.value
            waited = f"{self.waits[n - 1]:.1f}s" if n <= len(self.waits) else ""
            lines.append(
                f"{n:>5}  {outcome:<15} {counts[JobStatus.OK]:>4} {counts[JobStatus.CHANGED]:>8}"
                f" {counts[JobStatus.FAILED]:>7} {counts[JobStatus.BLOCKED]:>8}"
                f"  {run.duration:>6.2f}s  {waited}".rstrip()
            )
        lines.append(self.summary())
        return "\n".join(lines)


def _gave_up(result: RunResult) -> list[JobResult]:
    return [job for job in _failures(result)[0] if gave_up(job.exception)]


def _failures(result: RunResult) -> tuple[list[JobResult], list[str]]:
    """The failed jobs and the names of the blocked ones, in one pass."""
    failed: list[JobResult] = []
    blocked: list[str] = []
    failed_status, blocked_status = JobStatus.FAILED, JobStatus.BLOCKED
    for job in result.jobs.values():
        status = job.status
        if status is failed_status:
            failed.append(job)
        elif status is blocked_status:
            blocked.append(job.name)
    return failed, blocked


def failure_signature(
    result: RunResult, failures: tuple[list[JobResult], list[str]] | None = None
) -> frozenset[Hashable]:
    """What a round's failures look like, to tell whether the next round
    made progress: each failed job with its exception's type and message,
    and each blocked job.  ``failures``: :func:`_failures` of ``result``,
    when known."""
    failed, blocked = _failures(result) if failures is None else failures
    seen: set[Hashable] = set(blocked)
    for job in failed:
        err = job.exception
        seen.add((job.name, type(err).__name__, str(err)))
    return frozenset(seen)


def _seconds(value: float | timedelta | str | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, what)
    except ValueError as err:
        raise ConfigurationError(what, value, "give seconds, a timedelta or e.g. '5m'") from err


def converge(
    dj: DoJobber,
    node: type[Job] | str | None = None,
    *,
    max_rounds: int | None = None,
    within: float | timedelta | str | None = None,
    backoff: Backoff | float | str | None = None,
    max_stuck_rounds: int | None = None,
) -> ConvergeResult:
    """Run ``dj.checknrun(node)`` in rounds (see the module doc)."""
    if max_rounds is not None and (
        isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1
    ):
        raise ConfigurationError("max_rounds", max_rounds, "give a whole number >= 1 or None")
    if max_stuck_rounds is not None and (
        isinstance(max_stuck_rounds, bool) or not isinstance(max_stuck_rounds, int)
        or max_stuck_rounds < 1
    ):
        raise ConfigurationError(
            "max_stuck_rounds", max_stuck_rounds, "give a whole number >= 1 or None"
        )
    limit = _seconds(within, "within")
    try:
        policy = DEFAULT_BACKOFF if backoff is None else Backoff.of(backoff)
    except ValueError as err:
        raise ConfigurationError("backoff", backoff, str(err)) from err
    if max_rounds is None and limit is None:
        max_rounds = DEFAULT_MAX_ROUNDS
    dj._require_graph("converge")
    session = ConvergeResult(session=uuid.uuid4().hex[:16], started=time.time())
    start = time.monotonic()
    deadline = None if limit is None else start + limit
    wall_deadline = None if limit is None else session.started + limit
    wake: threading.Event = dj._wake
    if not dj._stop_requested:
        wake.clear()
    dj._converging = True
    bus = dj._bus
    number = 0
    grown = 0  # rounds in a row with the same failures (the wait's exponent)
    previous: frozenset[Hashable] | None = None
    try:
        while True:
            number += 1
            info = RoundInfo(session.session, number, max_rounds, wall_deadline, session.started)
            bus.emit("round_started", info)
            before = dj.result
            try:
                result = dj.checknrun(node)
            finally:
                if dj.result is not None and dj.result is not before:
                    session.rounds.append(dj.result)
                    bus.emit("round_finished", info, dj.result)
            if result.success():
                session.verdict, session.reason = Verdict.CONVERGED, ""
                break
            if result.outcome is RunOutcome.CHANGES_PENDING:
                would = len(result.would_run())
                session.verdict = Verdict.CHANGES_PENDING
                session.reason = (
                    f"{would} job{'' if would == 1 else 's'} would run; a dry run changes"
                    " nothing, so another round would find the same"
                )
                break
            cut_short = result.outcome in (RunOutcome.STOPPED, RunOutcome.INTERRUPTED)
            if cut_short or (wake.is_set() and dj._after_round):
                session.reason = "stopped on request"
                break
            failures = _failures(result)
            quitters = [job for job in failures[0] if gave_up(job.exception)]
            if quitters:
                session.verdict = Verdict.GAVE_UP
                shown = ", ".join(
                    f"{job.name} ({type(job.exception).__name__}: {job.exception})"
                    for job in quitters[:3]
                )
                more = f" and {len(quitters) - 3} more" if len(quitters) > 3 else ""
                session.reason = f"retrying will not fix {shown}{more}"
                break
            signature = failure_signature(result, failures)
            grown = grown + 1 if signature == previous else 0
            previous = signature
            if max_stuck_rounds is not None and grown >= max_stuck_rounds:
                session.verdict = Verdict.EXHAUSTED
                session.reason = (
                    f"{grown + 1} rounds in a row failed the same way (max_stuck_rounds="
                    f"{max_stuck_rounds})"
                )
                break
            if max_rounds is not None and number >= max_rounds:
                session.verdict = Verdict.EXHAUSTED
                session.reason = f"{number} rounds run (max_rounds={max_rounds})"
                break
            wait = policy.delay(grown + 1)
            if deadline is not None and time.monotonic() + wait >= deadline:
                session.verdict = Verdict.EXHAUSTED
                session.reason = (
                    f"the deadline ({limit:g}s) comes before the next round could start"
                    f" (in {wait:.1f}s)"
                )
                break
            info = RoundInfo(session.session, number + 1, max_rounds, wall_deadline,
                             session.started)
            bus.emit("round_waiting", info, wait)
            session.waits.append(wait)
            if wake.wait(wait):
                session.reason = "stopped on request while waiting"
                break
    except BaseException as err:
        session.verdict = Verdict.INTERRUPTED
        session.reason = (
            "interrupted (Ctrl-C)" if isinstance(err, KeyboardInterrupt)
            else f"{type(err).__name__}: {err}"
        )
        _finish(dj, session)
        raise
    _finish(dj, session)
    return session


def _finish(dj: DoJobber, session: ConvergeResult) -> None:
    session.finished = time.time()
    dj._converging = False
    dj._after_round = False
    dj._stop_requested = False  # (a stop() that ended a wait is used up)
    dj._wake.clear()
    dj.converge_result = session
    dj._bus.emit("converge_finished", session)
